//! Devices as CSV (`provisor device import` / `export`, and the admin API's bulk import): a header row of the fields
//! `mac`, `model`, `serial`, `description`, `group` and any parameter names (web-UI labels are accepted and turned
//! into element names), one device per row. An import is all or nothing: every row is checked first, and one bad row
//! (an unknown group, a bad MAC, a duplicate, a device that exists, a value the parameter dictionary refuses) stops
//! the whole file, with every problem named by line.

use std::collections::{BTreeSet, HashMap};

use super::parameter::{check_known, check_parameter};
use super::{Device, Mac, Secrets, Store, StoreError};

/// How an import treats what the inventory already has and names the dictionary does not know.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// A row for an existing device updates it (the row's non-empty cells replace fields and parameters; its
    /// secrets stay) instead of being an error.
    pub update: bool,
    /// Parameter names the dictionary does not know are taken instead of refused.
    pub allow_unknown: bool,
}

/// What an import would do.
#[derive(Debug, Clone, Default)]
pub struct Import {
    /// New devices, with fresh secrets.
    pub add: Vec<Device>,
    /// Existing devices as they are and as the import leaves them (only those that change).
    pub update: Vec<(Device, Device)>,
    /// Existing devices the import leaves as they are.
    pub unchanged: usize,
}

impl Import {
    /// Applies it: every change or none.
    pub async fn apply(&self, store: &impl Store, progress: &(dyn Fn(usize) + Sync)) -> Result<(), StoreError> {
        let update: Vec<Device> = self.update.iter().map(|(_, new)| new.clone()).collect();
        store.apply_import(&self.add, &update, progress).await
    }

    /// One line per change: `+ MAC (model)` for a new device, `~ MAC field: old -> new` per changed field or
    /// parameter (password values masked).
    pub fn diff(&self) -> Vec<String> {
        let mut out: Vec<String> = self.add.iter().map(|d| format!("+ {} ({})", d.mac, d.model)).collect();
        for (old, new) in &self.update {
            out.extend(device_diff(old, new).into_iter().map(|c| format!("~ {} {c}", new.mac)));
        }
        out
    }
}

/// What differs between two versions of a device: fields and parameters (password values masked).
pub fn device_diff(old: &Device, new: &Device) -> Vec<String> {
    let mut out = Vec::new();
    let field = |out: &mut Vec<String>, name: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{name}: {a:?} -> {b:?}"));
        }
    };
    field(&mut out, "model", &old.model, &new.model);
    field(&mut out, "serial", &old.serial, &new.serial);
    field(&mut out, "description", &old.description, &new.description);
    field(&mut out, "group", old.group.as_deref().unwrap_or(""), new.group.as_deref().unwrap_or(""));
    let names: BTreeSet<&String> = old.params.keys().chain(new.params.keys()).collect();
    for name in names {
        let (a, b) = (old.params.get(name), new.params.get(name));
        if a == b {
            continue;
        }
        let show = |v: Option<&String>| match v {
            None => "(unset)".to_string(),
            Some(_) if super::at_rest::is_password(name) => "(secret)".to_string(),
            Some(v) => format!("{v:?}"),
        };
        out.push(format!("{name}: {} -> {}", show(a), show(b)));
    }
    out
}

/// The device fields, in export order; every other column is a parameter.
pub const FIELDS: [&str; 5] = ["mac", "model", "serial", "description", "group"];

/// A problem with one row (or the header, line 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}: {message}")]
pub struct RowError {
    /// The line in the file (1-based).
    pub line: u64,
    /// What is wrong, naming the column.
    pub message: String,
}

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Rows that cannot be imported (all of them, in file order).
    #[error("{} bad row(s)", .0.len())]
    Rows(Vec<RowError>),
    /// The inventory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the export failed (a closed pipe, a full disk).
    #[error("writing the export: {0}")]
    Write(#[source] std::io::Error),
}

impl From<::csv::Error> for ImportError {
    fn from(e: ::csv::Error) -> ImportError {
        match e.into_kind() {
            ::csv::ErrorKind::Io(io) => ImportError::Write(io),
            other => ImportError::Write(std::io::Error::other(format!("{other:?}"))),
        }
    }
}

/// The line (1-based) of byte offsets into a text, for offsets that only grow.
#[derive(Default)]
struct LineCounter {
    byte: usize,
    line: u64,
}

impl LineCounter {
    fn at(&mut self, data: &[u8], byte: u64) -> u64 {
        let mut byte = (byte as usize).min(data.len());
        // After a CR, the csv crate's record starts at the LF that ends the line before.
        while data.get(byte).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            byte += 1;
        }
        if byte < self.byte {
            *self = LineCounter::default();
        }
        self.line += data[self.byte..byte].iter().filter(|b| **b == b'\n').count() as u64;
        self.byte = byte;
        self.line + 1
    }
}

/// Reads and checks `data` against `store` (groups that exist, MACs that do not unless `options.update`, names the
/// dictionary knows unless `options.allow_unknown`); returns what the import would do.
pub async fn read_devices(store: &impl Store, data: &[u8], options: ImportOptions) -> Result<Import, ImportError> {
    let row = |line: u64, message: String| RowError { line, message };
    let mut reader = ::csv::ReaderBuilder::new().trim(::csv::Trim::All).flexible(false).from_reader(data);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => return Err(ImportError::Rows(vec![row(1, format!("cannot read the header row: {e}"))])),
    };
    let columns: Vec<String> = headers
        .iter()
        .map(|h| {
            let lower = h.to_ascii_lowercase();
            if FIELDS.contains(&lower.as_str()) { lower } else { provisor_profile::dictionary::element_name(h) }
        })
        .collect();
    if !columns.iter().any(|c| c == "mac") {
        return Err(ImportError::Rows(vec![row(1, "the header row has no \"mac\" column".into())]));
    }
    if !options.allow_unknown {
        let unknown: Vec<String> = columns
            .iter()
            .filter(|c| !FIELDS.contains(&c.as_str()))
            .filter_map(|c| check_known(c).err().map(|e| e.to_string()))
            .collect();
        if !unknown.is_empty() {
            return Err(ImportError::Rows(unknown.into_iter().map(|m| row(1, m)).collect()));
        }
    }
    let groups: BTreeSet<String> = store.groups().await?.into_iter().map(|g| g.name).collect();
    let existing: HashMap<Mac, Device> = store.devices().await?.into_iter().map(|d| (d.mac.clone(), d)).collect();
    let mut errors = Vec::new();
    let mut seen: HashMap<Mac, u64> = HashMap::new();
    let mut import = Import::default();
    // Lines by the byte offset of each record (the csv crate's own line count is off for CRLF files, which is what
    // spreadsheets and browsers' forms write).
    let mut lines = LineCounter::default();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(row(e.position().map_or(0, |p| lines.at(data, p.byte())), e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.at(data, p.byte()));
        // The MAC first: an update starts from the device as it is.
        let mac_cell = columns.iter().zip(record.iter()).find(|(c, _)| *c == "mac").map(|(_, v)| v).unwrap_or("");
        let mac = match mac_cell.parse::<Mac>() {
            Ok(m) => m,
            Err(e) => {
                errors.push(row(line, format!("mac: {e}")));
                continue;
            }
        };
        let current = existing.get(&mac).filter(|_| options.update);
        let mut d = match current {
            Some(d) => d.clone(),
            None => Device::blank(mac.clone(), Secrets::generate()?),
        };
        let mut ok = true;
        for (column, value) in columns.iter().zip(record.iter()) {
            match column.as_str() {
                "mac" => {}
                "model" => d.model = value.to_string(),
                "serial" => d.serial = value.to_string(),
                "description" => d.description = value.to_string(),
                "group" if !value.is_empty() => {
                    if !groups.contains(value) {
                        errors
                            .push(row(line, format!("group: no group {value:?} (create it with provisor group put)")));
                        ok = false;
                    }
                    d.group = Some(value.to_string());
                }
                "group" => {}
                param if !value.is_empty() => {
                    if let Err(e) = check_parameter(param, value) {
                        errors.push(row(line, e.to_string()));
                        ok = false;
                    }
                    d.params.insert(param.to_string(), value.to_string());
                }
                _ => {}
            }
        }
        if !ok {
            continue;
        }
        if let Some(first) = seen.insert(d.mac.clone(), line) {
            errors.push(row(line, format!("mac {} is already on line {first}", d.mac)));
            continue;
        }
        match (current, existing.contains_key(&d.mac)) {
            (Some(old), _) if *old == d => import.unchanged += 1,
            (Some(old), _) => import.update.push((old.clone(), d)),
            (None, true) => errors.push(row(
                line,
                format!("device {} already exists (import --update changes it, or provisor device set)", d.mac),
            )),
            (None, false) => import.add.push(d),
        }
    }
    if errors.is_empty() { Ok(import) } else { Err(ImportError::Rows(errors)) }
}

/// Writes every device of `store` as CSV: the fields, then one column per parameter any device has.
pub async fn write_devices(store: &impl Store, out: impl std::io::Write) -> Result<(), ImportError> {
    let devices = store.devices().await?;
    let params: BTreeSet<&String> = devices.iter().flat_map(|d| d.params.keys()).collect();
    let mut w = ::csv::Writer::from_writer(out);
    let mut header: Vec<&str> = FIELDS.to_vec();
    header.extend(params.iter().map(|s| s.as_str()));
    w.write_record(&header)?;
    for d in &devices {
        let mut row = vec![
            d.mac.to_string(),
            d.model.clone(),
            d.serial.clone(),
            d.description.clone(),
            d.group.clone().unwrap_or_default(),
        ];
        row.extend(params.iter().map(|p| d.params.get(*p).cloned().unwrap_or_default()));
        w.write_record(&row)?;
    }
    w.flush().map_err(ImportError::Write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Group, MemoryStore};

    #[tokio::test]
    async fn an_import_names_every_bad_row_and_a_good_file_round_trips() {
        let store = MemoryStore::new();
        let g = Group { name: "office".into(), parent: None, description: String::new(), params: Default::default() };
        store.put_group(&g).await.unwrap();
        let bad = "mac,model,group,Proxy_1_,Resync_Periodic\n\
                   0011aabbcc01,CP-8841-3PCC,office,sip.example.com,3600\n\
                   nonsense,CP-8841-3PCC,office,,\n\
                   0011aabbcc02,CP-8841-3PCC,nowhere,,\n\
                   0011aabbcc01,CP-8841-3PCC,office,,\n\
                   0011aabbcc03,CP-8841-3PCC,office,,soon\n";
        let Err(ImportError::Rows(rows)) = read_devices(&store, bad.as_bytes(), ImportOptions::default()).await else {
            panic!("accepted")
        };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{rows:?}");
        // The same lines in a CRLF file (spreadsheets, browsers' forms), and with a quoted cell across two lines.
        let crlf = bad.replace('\n', "\r\n");
        let Err(ImportError::Rows(crlf_rows)) = read_devices(&store, crlf.as_bytes(), ImportOptions::default()).await
        else {
            panic!("accepted")
        };
        assert_eq!(crlf_rows.iter().map(|r| r.line).collect::<Vec<_>>(), [3, 4, 5, 6], "CRLF: {crlf_rows:?}");
        let quoted = "mac,model,description\r\n0011aabbcc07,CP-8841-3PCC,\"two\r\nlines\"\r\nnonsense,,\r\n";
        let Err(ImportError::Rows(quoted_rows)) =
            read_devices(&store, quoted.as_bytes(), ImportOptions::default()).await
        else {
            panic!("accepted")
        };
        assert_eq!(quoted_rows.iter().map(|r| r.line).collect::<Vec<_>>(), [4], "{quoted_rows:?}");
        assert!(rows[0].message.starts_with("mac:") && rows[1].message.starts_with("group:"), "{rows:?}");
        assert!(rows[3].message.starts_with("Resync_Periodic"), "{rows:?}");

        let good = "mac,model,group,Proxy_1_,Resync Periodic\n0011aabbcc01,CP-8841-3PCC,office,sip.example.com,600\n";
        let import = read_devices(&store, good.as_bytes(), ImportOptions::default()).await.unwrap();
        let devices = &import.add;
        assert_eq!(devices[0].params.get("Resync_Periodic").map(String::as_str), Some("600"), "labels become names");
        import.apply(&store, &|_| {}).await.unwrap();
        let mut out = Vec::new();
        write_devices(&store, &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "mac,model,serial,description,group,Proxy_1_,Resync_Periodic\n\
             0011aabbcc01,CP-8841-3PCC,,,office,sip.example.com,600\n"
        );
        let Err(ImportError::Rows(rows)) = read_devices(&store, good.as_bytes(), ImportOptions::default()).await else {
            panic!("accepted")
        };
        assert!(rows[0].message.contains("already exists"), "{rows:?}");

        // With --update: the row's cells replace what they name, the rest and the secrets stay.
        let before = store.device(&"0011aabbcc01".parse().unwrap()).await.unwrap().unwrap();
        let edited = "mac,Proxy_1_,Password_1_\n0011aabbcc01,sip2.example.com,new\n0011aabbcc09,,\n";
        let update = ImportOptions { update: true, ..ImportOptions::default() };
        let import = read_devices(&store, edited.as_bytes(), update).await.unwrap();
        assert_eq!((import.add.len(), import.update.len()), (1, 1));
        assert_eq!(
            import.diff(),
            [
                "+ 0011aabbcc09 ()",
                "~ 0011aabbcc01 Password_1_: (unset) -> (secret)",
                "~ 0011aabbcc01 Proxy_1_: \"sip.example.com\" -> \"sip2.example.com\""
            ]
        );
        import.apply(&store, &|_| {}).await.unwrap();
        let after = store.device(&"0011aabbcc01".parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(
            (after.secrets.aes_key.as_str(), after.model.as_str()),
            (before.secrets.aes_key.as_str(), "CP-8841-3PCC")
        );
        assert_eq!(after.params.get("Resync_Periodic").map(String::as_str), Some("600"));
        // Unknown names are refused before anything else, with a suggestion.
        let typo = "mac,Proxy_1,Resync_Periodik\n0011aabbcc01,a,1\n";
        let Err(ImportError::Rows(rows)) = read_devices(&store, typo.as_bytes(), update).await else { panic!() };
        assert!(rows.iter().any(|r| r.message.contains("did you mean Resync_Periodic")), "{rows:?}");
        let allow = ImportOptions { update: true, allow_unknown: true };
        assert!(read_devices(&store, typo.as_bytes(), allow).await.is_ok());
    }
}
