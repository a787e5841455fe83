//! Devices as CSV (`provisor device import` / `export`, and the admin API's bulk import): a header row of the fields
//! `mac`, `model`, `serial`, `description`, `group` and any parameter names (web-UI labels are accepted and turned
//! into element names), one device per row. An import is all or nothing: every row is checked first, and one bad row
//! (an unknown group, a bad MAC, a duplicate, a device that exists, a value the parameter dictionary refuses) stops
//! the whole file, with every problem named by line.

use std::collections::{BTreeSet, HashMap};

use super::parameter::check_parameter;
use super::{Device, Mac, Secrets, Store, StoreError};

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

/// Reads and checks `data` against `store` (groups that exist, MACs that do not); returns the devices to add, each
/// with fresh secrets.
pub async fn read_devices(store: &impl Store, data: &[u8]) -> Result<Vec<Device>, ImportError> {
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
    let groups: BTreeSet<String> = store.groups().await?.into_iter().map(|g| g.name).collect();
    let existing: BTreeSet<Mac> = store.devices().await?.into_iter().map(|d| d.mac).collect();
    let mut errors = Vec::new();
    let mut seen: HashMap<Mac, u64> = HashMap::new();
    let mut devices = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(row(e.position().map_or(0, |p| p.line()), e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let mut mac: Option<Mac> = None;
        let mut d = Device::blank(Mac::placeholder(), Secrets::generate()?);
        let mut ok = true;
        for (column, value) in columns.iter().zip(record.iter()) {
            match column.as_str() {
                "mac" => match value.parse::<Mac>() {
                    Ok(m) => mac = Some(m),
                    Err(e) => {
                        errors.push(row(line, format!("mac: {e}")));
                        ok = false;
                    }
                },
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
        let Some(mac) = mac.filter(|_| ok) else { continue };
        d.mac = mac;
        if let Some(first) = seen.insert(d.mac.clone(), line) {
            errors.push(row(line, format!("mac {} is already on line {first}", d.mac)));
            continue;
        }
        if existing.contains(&d.mac) {
            errors.push(row(line, format!("device {} already exists (remove it or use provisor device set)", d.mac)));
            continue;
        }
        devices.push(d);
    }
    if errors.is_empty() { Ok(devices) } else { Err(ImportError::Rows(errors)) }
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
        let Err(ImportError::Rows(rows)) = read_devices(&store, bad.as_bytes()).await else { panic!("accepted") };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{rows:?}");
        assert!(rows[0].message.starts_with("mac:") && rows[1].message.starts_with("group:"), "{rows:?}");
        assert!(rows[3].message.starts_with("Resync_Periodic"), "{rows:?}");

        let good = "mac,model,group,Proxy_1_,Resync Periodic\n0011aabbcc01,CP-8841-3PCC,office,sip.example.com,600\n";
        let devices = read_devices(&store, good.as_bytes()).await.unwrap();
        assert_eq!(devices[0].params.get("Resync_Periodic").map(String::as_str), Some("600"), "labels become names");
        store.import_devices(&devices, &|_| {}).await.unwrap();
        let mut out = Vec::new();
        write_devices(&store, &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "mac,model,serial,description,group,Proxy_1_,Resync_Periodic\n\
             0011aabbcc01,CP-8841-3PCC,,,office,sip.example.com,600\n"
        );
        let Err(ImportError::Rows(rows)) = read_devices(&store, good.as_bytes()).await else { panic!("accepted") };
        assert!(rows[0].message.contains("already exists"), "{rows:?}");
    }
}
