//! Reading inputs and writing outputs safely: `-` is stdin/stdout, files are replaced atomically.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Reads `path` (or stdin for `-`), refusing more than `limit` bytes so a huge file fails fast and clearly.
pub fn read_input(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let name = display(path);
    let mut data = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().take(limit as u64 + 1).read_to_end(&mut data)
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("{name}: cannot open"))?;
        if let Ok(meta) = file.metadata()
            && meta.len() > limit as u64
        {
            bail!("{name}: file is {} bytes, more than the limit of {limit} bytes (see --max-size)", meta.len());
        }
        file.take(limit as u64 + 1).read_to_end(&mut data)
    };
    read.with_context(|| format!("{name}: cannot read"))?;
    if data.len() > limit {
        bail!("{name}: input is more than the limit of {limit} bytes (see --max-size)");
    }
    Ok(data)
}

/// Writes `data` to `path` (or stdout for `-`). A file is written beside its target and renamed into place, so a
/// failure never leaves a half-written output.
pub fn write_output(path: &Path, data: &[u8]) -> Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(data).and_then(|_| out.flush()).context("cannot write to standard output")?;
        return Ok(());
    }
    let name = display(path);
    // Devices, FIFOs and the like (/dev/null, /dev/stdout, a pipe) are written directly: renaming over them would
    // replace the device with a file.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        let mut f =
            std::fs::OpenOptions::new().write(true).open(path).with_context(|| format!("{name}: cannot open"))?;
        f.write_all(data).with_context(|| format!("{name}: cannot write"))?;
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().with_context(|| format!("{name}: not a file name"))?;
    let tmp = dir.join(format!(".{}.provisor-{}.tmp", file_name.to_string_lossy(), std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("{name}: cannot write"));
    }
    Ok(())
}

/// How a path is named in messages.
pub fn display(path: &Path) -> String {
    if path == Path::new("-") { "<stdin>".to_string() } else { path.display().to_string() }
}
