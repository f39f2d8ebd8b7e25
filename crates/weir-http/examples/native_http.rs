//! The native baseline for `benches/http-bench.sh`: the hello and echo handlers of
//! `guests/http/` written as plain hyper services (HTTP/1.1 keep-alive, multi-threaded
//! tokio), no WebAssembly.
//!
//! `cargo run --release -p weir-http --example native_http -- hello|echo ADDR`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

async fn hello(
    _request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let body = Full::new(Bytes::from_static(
        b"Hello from a wasi:http component on Weir\n",
    ));
    Ok(http::Response::builder()
        .header("content-type", "text/plain")
        .body(body.map_err(|e| match e {}).boxed())
        .unwrap_or_default())
}

async fn echo(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let mut response = http::Response::builder();
    if let Some(kind) = request.headers().get("content-type") {
        response = response.header("content-type", kind);
    }
    Ok(response
        .body(request.into_body().boxed())
        .unwrap_or_default())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, addr] = args.as_slice() else {
        anyhow::bail!("usage: native_http hello|echo ADDR");
    };
    let echoing = match mode.as_str() {
        "hello" => false,
        "echo" => true,
        other => anyhow::bail!("unknown mode `{other}` (hello or echo)"),
    };
    let addr: std::net::SocketAddr = addr.parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let builder = hyper::server::conn::http1::Builder::new();
                    let _ = if echoing {
                        builder
                            .serve_connection(io, hyper::service::service_fn(echo))
                            .await
                    } else {
                        builder
                            .serve_connection(io, hyper::service::service_fn(hello))
                            .await
                    };
                });
            }
        })
}
