//! A WASI 0.3 command using `wasi:http/client`: `p3_http_client AUTHORITY [PATH]` sends a
//! GET to `http://AUTHORITY/PATH` (no path: `none`) and prints the status and the body, or
//! the send error.

use wasip3::http::types::{Fields, Request, Scheme};
use wasip3::wit_bindgen::StreamResult;
use wasip3::{wit_future, wit_stream};

struct Client;

async fn say(text: String) {
    let (mut writer, reader) = wit_stream::new();
    let done = wasip3::cli::stdout::write_via_stream(reader);
    let _ = writer.write_all(text.into_bytes()).await;
    drop(writer);
    let _ = done.await;
}

impl wasip3::exports::cli::run::Guest for Client {
    async fn run() -> Result<(), ()> {
        let args = wasip3::cli::environment::get_arguments();
        let authority = args.get(1).cloned().unwrap_or_default();
        let path = args.get(2).cloned();
        let (_, trailers) = wit_future::new(|| Ok(None));
        let (request, _sent) = Request::new(Fields::new(), None, trailers, None);
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some(&authority));
        let _ = request.set_path_with_query(path.as_deref());
        let response = match wasip3::http::client::send(request).await {
            Ok(response) => response,
            Err(code) => {
                say(format!("send failed: {code:?}\n")).await;
                return Err(());
            }
        };
        let status = response.get_status_code();
        let (_, result) = wit_future::new(|| Ok(()));
        let (mut body, _trailers) = wasip3::http::types::Response::consume_body(response, result);
        let mut bytes = Vec::new();
        loop {
            let (state, chunk) = body.read(Vec::with_capacity(64 * 1024)).await;
            bytes.extend_from_slice(&chunk);
            if !matches!(state, StreamResult::Complete(_)) {
                break;
            }
        }
        say(format!("{status} {}", String::from_utf8_lossy(&bytes))).await;
        Ok(())
    }
}

wasip3::cli::command::export!(Client);
