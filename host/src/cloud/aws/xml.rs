//! Reading AWS's XML answers (Query APIs, S3) with aws-smithy-xml: the
//! first text of an element, the texts of repeated ones, an error's code
//! and message.

/// `status Code: Message` of an AWS error body.
pub fn api_error(status: u16, body: &str) -> String {
    match (first_text(body, "Code"), first_text(body, "Message")) {
        (Some(code), Some(message)) => format!("{status} {code}: {message}"),
        (Some(code), None) => format!("{status} {code}"),
        _ => format!("{status}"),
    }
}

/// The text of the first element named `name` of an XML document.
pub fn first_text(xml: &str, name: &str) -> Option<String> {
    let mut doc = aws_smithy_xml::decode::Document::new(xml);
    while let Some(el) = doc.next_start_element() {
        if el.local() == name {
            let mut scoped = doc.scoped_to(el);
            return aws_smithy_xml::decode::try_data(&mut scoped)
                .ok()
                .map(|t| t.to_string());
        }
    }
    None
}

/// For each element named `parent`, the texts of its children named in
/// `fields` (in that order; empty when absent).
pub fn records(xml: &str, parent: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut doc = aws_smithy_xml::decode::Document::new(xml);
    let mut out = Vec::new();
    while let Some(el) = doc.next_start_element() {
        if el.local() != parent {
            continue;
        }
        let mut record = vec![String::new(); fields.len()];
        let mut scoped = doc.scoped_to(el);
        while let Some(child) = scoped.next_tag() {
            if let Some(i) = fields.iter().position(|f| child.start_el().local() == *f) {
                let mut inner = child;
                if let Ok(text) = aws_smithy_xml::decode::try_data(&mut inner) {
                    record[i] = text.to_string();
                }
            }
        }
        out.push(record);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_errors_read_from_s3_xml() {
        let xml = r#"<?xml version="1.0"?><ListPartsResult><Bucket>b</Bucket><Part><PartNumber>1</PartNumber><ETag>"a1"</ETag><Size>8</Size></Part><Part><PartNumber>2</PartNumber><ETag>"b2"</ETag><Size>3</Size></Part><IsTruncated>false</IsTruncated></ListPartsResult>"#;
        assert_eq!(
            records(xml, "Part", &["PartNumber", "ETag", "Size"]),
            vec![
                vec!["1".to_string(), "\"a1\"".into(), "8".into()],
                vec!["2".to_string(), "\"b2\"".into(), "3".into()]
            ]
        );
        assert_eq!(first_text(xml, "IsTruncated").as_deref(), Some("false"));
        let err = "<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>";
        assert_eq!(api_error(404, err), "404 NoSuchUpload: gone");
    }
}
