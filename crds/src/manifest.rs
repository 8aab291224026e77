//! Manifests: multi-document YAML, or JSON (one object or an array of objects).

use crate::object::{Object, ParseError};

/// A document that failed to parse, with its position in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {index}{}: {error}", name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default())]
pub struct DocumentError {
    /// 1-based index of the document in the manifest.
    pub index: usize,
    /// `kind/name` when the document got far enough to tell.
    pub name: Option<String>,
    pub error: ParseError,
}

/// Parses every document of a YAML stream (JSON is YAML too). Empty documents are skipped.
/// Returns all errors, not just the first, so a user fixes a manifest in one go.
pub fn parse(text: &str) -> Result<Vec<Object>, Vec<DocumentError>> {
    use serde::Deserialize;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = match serde_yaml_ng::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                // A syntax error ends the stream: nothing after it can be trusted.
                errors.push(DocumentError {
                    index,
                    name: None,
                    error: ParseError::at("", e.to_string()),
                });
                break;
            }
        };
        let docs = match value {
            serde_yaml_ng::Value::Null => continue,
            // A JSON array (or YAML sequence) of objects, as `omtd get -o json` prints a list.
            serde_yaml_ng::Value::Sequence(items) => items,
            other => vec![other],
        };
        for value in docs {
            let name = describe(&value);
            match Object::from_yaml(value) {
                Ok(obj) => objects.push(obj),
                Err(error) => errors.push(DocumentError { index, name, error }),
            }
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

fn describe(value: &serde_yaml_ng::Value) -> Option<String> {
    let kind = value.get("kind")?.as_str()?;
    let name = value.get("metadata")?.get("name")?.as_str()?;
    Some(format!("{}/{name}", kind.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_json_array() {
        let yaml = "---\napiVersion: omtd/v1\nkind: Node\nmetadata: {name: a}\nspec: {address: 10.0.0.1}\n---\n---\napiVersion: omtd/v1\nkind: Node\nmetadata: {name: b}\nspec: {address: 10.0.0.2}\n";
        assert_eq!(parse(yaml).unwrap().len(), 2);
        let json = r#"[{"apiVersion":"omtd/v1","kind":"Node","metadata":{"name":"a"},"spec":{"address":"10.0.0.1"}}]"#;
        assert_eq!(parse(json).unwrap().len(), 1);
    }

    #[test]
    fn reports_every_bad_document_with_its_index() {
        let yaml = "apiVersion: omtd/v1\nkind: Node\nmetadata: {name: a}\nspec: {adress: x}\n---\napiVersion: omtd/v1\nkind: Node\nmetadata: {name: b}\nspec: {address: 10.0.0.2, roles: [boss]}\n";
        let errs = parse(yaml).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].index, 1);
        assert_eq!(
            errs[1].to_string().split(':').next().unwrap(),
            "document 2 (node/b)"
        );
    }

    #[test]
    fn syntax_error_is_reported() {
        let errs = parse("apiVersion: [\n").unwrap_err();
        assert_eq!(errs.len(), 1);
    }
}
