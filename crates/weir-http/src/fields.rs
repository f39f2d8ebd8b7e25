//! `wasi:http/types.fields`: headers and trailers.
//!
//! Entries are kept in order with their original casing (`entries` returns them so); names
//! compare case-insensitively. Names and values are checked with the `http` crate's rules
//! (RFC 9110 tokens; values without CR, LF or NUL).

use wasmtime::component::Resource;

use crate::WasiHttpCtxView;
use crate::bindings::wasi::http::types::{FieldName, FieldValue, HeaderError, HostFields};

/// Header names a guest may not set: they belong to the connection, which the host manages
/// (the same list as wasmtime's default).
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];

/// The guest's `fields` resource.
#[derive(Clone, Debug, Default)]
pub struct FieldsResource {
    entries: Vec<(String, Vec<u8>)>,
    /// What the entries count against the field size limit (kept with them, so that an
    /// `append` checks the limit without a pass over the entries).
    size: usize,
    /// Fields handed out by `headers()` accessors and as incoming trailers are read-only.
    mutable: bool,
}

fn is_forbidden(name: &str) -> bool {
    FORBIDDEN_HEADERS
        .iter()
        .any(|forbidden| forbidden.eq_ignore_ascii_case(name))
}

fn valid_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

fn valid_value(value: &[u8]) -> bool {
    http::HeaderValue::from_bytes(value).is_ok()
}

impl FieldsResource {
    /// Empty, mutable fields.
    pub fn new() -> Self {
        FieldsResource::holding(Vec::new(), true)
    }

    fn holding(entries: Vec<(String, Vec<u8>)>, mutable: bool) -> Self {
        FieldsResource {
            size: entries_size(&entries),
            entries,
            mutable,
        }
    }

    /// Read-only fields holding `map` (headers of a request or response received by the
    /// host, in the order the peer sent them).
    pub fn immutable_from(map: &http::HeaderMap) -> Self {
        let entries = map
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
            .collect();
        FieldsResource::holding(entries, false)
    }

    /// A read-only copy.
    pub fn frozen(&self) -> Self {
        FieldsResource {
            mutable: false,
            ..self.clone()
        }
    }

    /// Entries built by a guest: every name and value checked, forbidden names refused.
    fn checked(entries: Vec<(String, Vec<u8>)>) -> Result<Self, HeaderError> {
        for (name, value) in &entries {
            check_entry(name, Some(value))?;
        }
        Ok(FieldsResource::holding(entries, true))
    }

    /// The entries as an `http` header map (for sending).
    pub fn to_header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::with_capacity(self.entries.len());
        for (name, value) in &self.entries {
            // Checked when they were added.
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    /// The values of `name`, in order.
    pub fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn require_mutable(&self) -> Result<(), HeaderError> {
        if self.mutable {
            Ok(())
        } else {
            Err(HeaderError::Immutable)
        }
    }

    fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.size = entries_size(&self.entries);
    }
}

/// The bytes each entry counts for besides its name and value, so that empty values count
/// too (about what the host keeps per entry).
pub const ENTRY_OVERHEAD: usize = 32;

fn entry_size(name: &str, value: &[u8]) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

fn entries_size<'a>(entries: impl IntoIterator<Item = &'a (String, Vec<u8>)>) -> usize {
    entries
        .into_iter()
        .map(|(name, value)| entry_size(name, value))
        .sum()
}

/// Traps when a guest's fields would hold `size` bytes, over `limit`.
fn check_size(operation: &str, size: usize, limit: usize) -> wasmtime::Result<()> {
    if size > limit {
        wasmtime::bail!(
            "wasi:http/types.fields.{operation}: the fields would hold {size} bytes, over the \
             limit of {limit} (set by max-http-fields-size)"
        );
    }
    Ok(())
}

fn check_entry(name: &str, value: Option<&[u8]>) -> Result<(), HeaderError> {
    if !valid_name(name) || value.is_some_and(|v| !valid_value(v)) {
        return Err(HeaderError::InvalidSyntax);
    }
    if is_forbidden(name) {
        return Err(HeaderError::Forbidden);
    }
    Ok(())
}

impl HostFields for WasiHttpCtxView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<FieldsResource>> {
        Ok(self.table.push(FieldsResource::new())?)
    }

    fn from_list(
        &mut self,
        entries: Vec<(FieldName, FieldValue)>,
    ) -> wasmtime::Result<Result<Resource<FieldsResource>, HeaderError>> {
        check_size(
            "from-list",
            entries_size(&entries),
            self.ctx.field_size_limit,
        )?;
        match FieldsResource::checked(entries) {
            Ok(fields) => Ok(Ok(self.table.push(fields)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    fn get(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
    ) -> wasmtime::Result<Vec<FieldValue>> {
        let fields = self.table.get(&fields)?;
        Ok(fields.values(&name).map(<[u8]>::to_vec).collect())
    }

    fn has(&mut self, fields: Resource<FieldsResource>, name: FieldName) -> wasmtime::Result<bool> {
        let fields = self.table.get(&fields)?;
        Ok(fields.values(&name).next().is_some())
    }

    fn set(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
        values: Vec<FieldValue>,
    ) -> wasmtime::Result<Result<(), HeaderError>> {
        let limit = self.ctx.field_size_limit;
        let fields = self.table.get_mut(&fields)?;
        let checked = fields.require_mutable().and_then(|()| {
            check_entry(&name, None)?;
            if values.iter().any(|v| !valid_value(v)) {
                return Err(HeaderError::InvalidSyntax);
            }
            Ok(())
        });
        if let Err(error) = checked {
            return Ok(Err(error));
        }
        let replaced = entries_size(
            fields
                .entries
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&name)),
        );
        let added: usize = values.iter().map(|value| entry_size(&name, value)).sum();
        check_size("set", fields.size - replaced + added, limit)?;
        fields.remove(&name);
        fields
            .entries
            .extend(values.into_iter().map(|value| (name.clone(), value)));
        fields.size += added;
        Ok(Ok(()))
    }

    fn delete(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
    ) -> wasmtime::Result<Result<(), HeaderError>> {
        let fields = self.table.get_mut(&fields)?;
        if let Err(error) = fields
            .require_mutable()
            .and_then(|()| check_entry(&name, None))
        {
            return Ok(Err(error));
        }
        fields.remove(&name);
        Ok(Ok(()))
    }

    fn append(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
        value: FieldValue,
    ) -> wasmtime::Result<Result<(), HeaderError>> {
        let limit = self.ctx.field_size_limit;
        let fields = self.table.get_mut(&fields)?;
        if let Err(error) = fields
            .require_mutable()
            .and_then(|()| check_entry(&name, Some(&value)))
        {
            return Ok(Err(error));
        }
        let added = entry_size(&name, &value);
        check_size("append", fields.size + added, limit)?;
        fields.entries.push((name, value));
        fields.size += added;
        Ok(Ok(()))
    }

    fn entries(
        &mut self,
        fields: Resource<FieldsResource>,
    ) -> wasmtime::Result<Vec<(FieldName, FieldValue)>> {
        Ok(self.table.get(&fields)?.entries.clone())
    }

    fn clone(
        &mut self,
        fields: Resource<FieldsResource>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        let copy = FieldsResource {
            mutable: true,
            ..self.table.get(&fields)?.clone()
        };
        Ok(self.table.push(copy)?)
    }

    fn drop(&mut self, fields: Resource<FieldsResource>) -> wasmtime::Result<()> {
        self.table.delete(fields)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_case_insensitively_and_keep_their_casing() {
        let fields = FieldsResource::checked(vec![
            ("Content-Type".into(), b"text/plain".to_vec()),
            ("x-a".into(), b"1".to_vec()),
            ("X-A".into(), b"2".to_vec()),
        ])
        .unwrap();
        assert_eq!(fields.values("x-A").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(fields.entries[0].0, "Content-Type");
    }

    #[test]
    fn invalid_and_forbidden_entries_are_refused() {
        for (name, value, error) in [
            ("bad name", &b"v"[..], HeaderError::InvalidSyntax),
            ("", b"v", HeaderError::InvalidSyntax),
            ("x", b"a\r\nb", HeaderError::InvalidSyntax),
            ("x", b"a\0b", HeaderError::InvalidSyntax),
            ("Connection", b"close", HeaderError::Forbidden),
            ("host", b"example.com", HeaderError::Forbidden),
        ] {
            let result = FieldsResource::checked(vec![(name.into(), value.to_vec())]);
            assert!(
                matches!((&result, &error), (Err(a), b) if std::mem::discriminant(a) == std::mem::discriminant(b)),
                "{name:?} {value:?}: {result:?}"
            );
        }
    }

    /// A view over a fresh context whose fields may hold at most `limit` bytes.
    fn with_limit<R>(limit: usize, f: impl FnOnce(&mut WasiHttpCtxView<'_>) -> R) -> R {
        let mut ctx = crate::WasiHttpCtx::default().with_field_size_limit(limit);
        let mut table = wasmtime::component::ResourceTable::new();
        f(&mut WasiHttpCtxView {
            ctx: &mut ctx,
            table: &mut table,
        })
    }

    fn entry(name: &str, value_len: usize) -> (String, Vec<u8>) {
        (name.to_string(), vec![b'v'; value_len])
    }

    #[test]
    fn guest_built_fields_are_bounded_by_the_field_size_limit() {
        // One entry of name 1 + value 67 + overhead 32 = 100 bytes.
        let one = || entry("x", 67);
        assert_eq!(entry_size(&one().0, &one().1), 100);

        // from-list: exactly the limit fits; one byte more traps, naming the limit.
        with_limit(300, |view| {
            assert!(view.from_list(vec![one(), one(), one()]).unwrap().is_ok());
            let error = view
                .from_list(vec![one(), one(), entry("x", 68)])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("fields.from-list") && error.contains("301 bytes"),
                "{error}"
            );
            assert!(error.contains("limit of 300"), "{error}");
        });

        // append adds to what is there.
        with_limit(300, |view| {
            let fields = view.new().unwrap();
            let append_three = |view: &mut WasiHttpCtxView<'_>| {
                for _ in 0..3 {
                    let rep = Resource::new_borrow(fields.rep());
                    assert!(
                        view.append(rep, "x".into(), vec![b'v'; 67])
                            .unwrap()
                            .is_ok()
                    );
                }
            };
            append_three(view);
            let rep = Resource::new_borrow(fields.rep());
            let error = view.append(rep, "y".into(), Vec::new()).unwrap_err();
            assert!(error.to_string().contains("fields.append"), "{error}");
            // `delete` gives the room back.
            let rep = Resource::new_borrow(fields.rep());
            assert!(view.delete(rep, "x".into()).unwrap().is_ok());
            append_three(view);
        });

        // set replaces the entries of its name, so only the result counts.
        with_limit(300, |view| {
            let fields = view.from_list(vec![one(), one()]).unwrap().unwrap();
            let borrow = || Resource::<FieldsResource>::new_borrow(fields.rep());
            let three = vec![vec![b'v'; 67]; 3];
            assert!(
                view.set(borrow(), "x".into(), three.clone())
                    .unwrap()
                    .is_ok()
            );
            let mut four = three;
            four.push(Vec::new());
            let error = view.set(borrow(), "x".into(), four).unwrap_err();
            assert!(error.to_string().contains("fields.set"), "{error}");
        });

        // The default is wasmtime's 128 KiB.
        with_limit(crate::DEFAULT_FIELD_SIZE_LIMIT, |view| {
            let big = entry("x", 128 * 1024);
            assert!(view.from_list(vec![big]).is_err());
        });
    }
}
