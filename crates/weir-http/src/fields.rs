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
        FieldsResource {
            entries: Vec::new(),
            mutable: true,
        }
    }

    /// Read-only fields holding `map` (headers of a request or response received by the
    /// host, in the order the peer sent them).
    pub fn immutable_from(map: &http::HeaderMap) -> Self {
        FieldsResource {
            entries: map
                .iter()
                .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
                .collect(),
            mutable: false,
        }
    }

    /// A read-only copy.
    pub fn frozen(&self) -> Self {
        FieldsResource {
            entries: self.entries.clone(),
            mutable: false,
        }
    }

    /// Entries built by a guest: every name and value checked, forbidden names refused.
    fn checked(entries: Vec<(String, Vec<u8>)>) -> Result<Self, HeaderError> {
        for (name, value) in &entries {
            check_entry(name, Some(value))?;
        }
        Ok(FieldsResource {
            entries,
            mutable: true,
        })
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
    }
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
        fields.remove(&name);
        fields
            .entries
            .extend(values.into_iter().map(|value| (name.clone(), value)));
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
        let fields = self.table.get_mut(&fields)?;
        if let Err(error) = fields
            .require_mutable()
            .and_then(|()| check_entry(&name, Some(&value)))
        {
            return Ok(Err(error));
        }
        fields.entries.push((name, value));
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
            entries: self.table.get(&fields)?.entries.clone(),
            mutable: true,
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
}
