//! Editing an enterprise config by element path (`provisor profile repack --set PATH=VALUE` on `.sgn` and `.enc.sgn`
//! files): `loadInformation`, `sipProfile/sipLines/line[1]/authPassword`. A path is relative to the root element;
//! `name[N]` picks the N-th (1-based) child of that name. Everything else of the document stays byte for byte.

use quick_xml::events::Event;

use crate::TrustError;

/// One step of a path: a name and which of its siblings (1-based).
fn steps(path: &str) -> Result<Vec<(String, usize)>, TrustError> {
    path.trim_matches('/')
        .split('/')
        .map(|step| match step.split_once('[') {
            Some((name, rest)) => {
                let n: usize = rest
                    .strip_suffix(']')
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| TrustError::at(0, format!("{path:?}: {step:?} is not NAME[N] with N from 1")))?;
                Ok((name.to_string(), n))
            }
            None if !step.is_empty() => Ok((step.to_string(), 1)),
            None => Err(TrustError::at(0, format!("{path:?}: an empty step"))),
        })
        .collect()
}

fn escape(value: &str) -> String {
    value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `xml` with the text of the element at `path` set to `value` (escaped). The element must exist; its children, if
/// it has any, are replaced by the text.
pub fn set_element(xml: &[u8], path: &str, value: &str) -> Result<Vec<u8>, TrustError> {
    let want = steps(path)?;
    let mut reader = quick_xml::Reader::from_reader(xml);
    // Per open element: its name, and how many children of each name it has had so far.
    let mut stack: Vec<(String, std::collections::HashMap<String, usize>)> = Vec::new();
    let mut matched = 0usize; // how many steps of `want` the open elements match (the root is not a step)
    let mut target: Option<(usize, usize)> = None; // the byte range to replace
    let mut open_at: Option<(usize, usize)> = None; // end of the target's start tag, and its depth
    loop {
        let before = reader.buffer_position() as usize;
        let event =
            reader.read_event().map_err(|e| TrustError::at(reader.error_position() as usize, format!("XML: {e}")))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(e) | Event::Empty(e) if target.is_none() => {
                let name = e.name();
                let name: &str = name.as_ref();
                let empty = after > before && xml[..after].ends_with(b"/>");
                let index = match stack.last_mut() {
                    Some((_, counts)) => {
                        let c = counts.entry(name.to_string()).or_insert(0);
                        *c += 1;
                        *c
                    }
                    None => 1,
                };
                let depth = stack.len(); // 0 for the root
                let on_path = depth >= 1
                    && matched == depth - 1
                    && want.get(depth - 1).is_some_and(|(n, i)| n == name && *i == index);
                if on_path {
                    matched = depth;
                    if matched == want.len() {
                        if empty {
                            // <x/>: becomes <x>value</x>.
                            let start = before;
                            let replacement = format!("<{name}>{}</{name}>", escape(value));
                            let mut out = xml[..start].to_vec();
                            out.extend_from_slice(replacement.as_bytes());
                            out.extend_from_slice(&xml[after..]);
                            return Ok(out);
                        }
                        open_at = Some((after, depth));
                    }
                }
                if !empty {
                    stack.push((name.to_string(), Default::default()));
                }
            }
            Event::End(_) => {
                if let Some((start, depth)) = open_at
                    && stack.len() == depth + 1
                {
                    target = Some((start, before));
                    open_at = None;
                }
                stack.pop();
                matched = matched.min(stack.len().saturating_sub(1));
            }
            Event::Eof => break,
            _ => {}
        }
        if target.is_some() {
            break;
        }
    }
    let (start, end) = target.ok_or_else(|| TrustError::at(0, format!("{path:?}: no such element")))?;
    let mut out = xml[..start].to_vec();
    out.extend_from_slice(escape(value).as_bytes());
    out.extend_from_slice(&xml[end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::set_element;

    #[test]
    fn paths_pick_elements_by_name_and_index() {
        let xml = b"<device><a>1</a><lines><line><p>x</p></line><line><p>y</p><e/></line></lines></device>";
        let out = set_element(xml, "lines/line[2]/p", "new & <ok>").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<device><a>1</a><lines><line><p>x</p></line><line><p>new &amp; &lt;ok&gt;</p><e/></line></lines></device>"
        );
        let out = set_element(xml, "a", "2").unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("<device><a>2</a>"));
        let out = set_element(xml, "lines/line[2]/e", "v").unwrap();
        assert!(String::from_utf8(out).unwrap().contains("<e>v</e>"));
        assert!(set_element(xml, "lines/line[3]/p", "z").is_err());
        assert!(set_element(xml, "b", "z").is_err());
        assert!(set_element(xml, "lines/line[0]", "z").is_err());
    }
}
