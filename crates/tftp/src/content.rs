//! What a read request is answered with: bytes of a known length (needed for `tsize`), from memory or a file, and
//! the sources that find them — the file system under a root that cannot be escaped, or a provisioning server's own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::packet::{ErrorCode, Mode};

/// Bytes with a known length, read at offsets.
pub trait Content: Send + Sync {
    /// The length in bytes.
    fn len(&self) -> u64;
    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl Content for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = (offset as usize).min(self.as_slice().len());
        let n = buf.len().min(self.as_slice().len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// A regular file, read with positioned reads (no shared cursor, so many transfers can share it).
pub struct FileContent {
    file: std::fs::File,
    len: u64,
}

impl FileContent {
    /// Opens a regular file.
    pub fn open(path: &Path) -> io::Result<FileContent> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(FileContent { file, len: meta.len() })
    }
}

impl Content for FileContent {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// A read or write request as a content source sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The client's address (its TID).
    pub client: SocketAddr,
    /// The address the request arrived on.
    pub local: SocketAddr,
    /// The file name as requested.
    pub filename: String,
    /// The transfer mode.
    pub mode: Mode,
    /// The options the client asked for, as sent.
    pub options: Vec<(String, String)>,
}

/// Why a request cannot be answered: the TFTP error to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// The message.
    pub message: String,
}

impl Refusal {
    /// ERROR 1.
    pub fn not_found() -> Refusal {
        Refusal { code: ErrorCode::FileNotFound, message: "File not found".into() }
    }

    /// ERROR 2.
    pub fn access(message: impl Into<String>) -> Refusal {
        Refusal { code: ErrorCode::AccessViolation, message: message.into() }
    }
}

/// Finds the content for a read request: the seam through which a provisioning server renders per-device files.
pub trait ContentSource: Send + Sync + 'static {
    /// Opens the content for `request`, or says which error to send.
    fn open(&self, request: &Request) -> impl Future<Output = Result<Arc<dyn Content>, Refusal>> + Send;

    /// Whether the source takes the write request `request` itself (when the server has no upload directory), and
    /// the most bytes it accepts. By default it takes none: write requests get ERROR 2.
    fn accepts_upload(&self, _request: &Request) -> Option<u64> {
        None
    }

    /// A completed upload that [`ContentSource::accepts_upload`] took.
    fn store(&self, _request: &Request, _data: Vec<u8>) -> impl Future<Output = Result<(), Refusal>> + Send {
        std::future::ready(Err(Refusal::access("Write requests are not accepted")))
    }
}

/// Files under a root directory that no request can escape.
#[derive(Debug, Clone)]
pub struct FsSource {
    root: PathBuf,
    case_insensitive: bool,
}

impl FsSource {
    /// Serves files under `root` (which must exist). With `case_insensitive`, `xmlDefault.CNF.XML` finds
    /// `XMLDefault.cnf.xml` (an exact match is preferred).
    pub fn new(root: &Path, case_insensitive: bool) -> io::Result<FsSource> {
        Ok(FsSource { root: root.canonicalize()?, case_insensitive })
    }

    /// The file a name refers to, checked to be inside the root (symbolic links included).
    pub fn resolve(&self, filename: &str) -> Result<PathBuf, Refusal> {
        if filename.contains(['\0', '\\']) {
            return Err(Refusal::access("Illegal file name"));
        }
        // An optional leading '/' (phones send both forms), but never an absolute path anywhere else.
        let relative = filename.strip_prefix('/').unwrap_or(filename);
        if relative.is_empty() {
            return Err(Refusal::not_found());
        }
        let mut path = self.root.clone();
        for component in Path::new(relative).components() {
            match component {
                Component::Normal(part) => {
                    let exact = path.join(part);
                    path = if self.case_insensitive && !exact.exists() {
                        find_case_insensitive(&path, &part.to_string_lossy()).unwrap_or(exact)
                    } else {
                        exact
                    };
                }
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(Refusal::access("Access violation"));
                }
            }
        }
        let real = path.canonicalize().map_err(|_| Refusal::not_found())?;
        if !real.starts_with(&self.root) {
            return Err(Refusal::access("Access violation"));
        }
        Ok(real)
    }
}

fn find_case_insensitive(dir: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name))
        .map(|e| e.path())
}

impl ContentSource for FsSource {
    async fn open(&self, request: &Request) -> Result<Arc<dyn Content>, Refusal> {
        let path = self.resolve(&request.filename)?;
        match FileContent::open(&path) {
            Ok(c) => Ok(Arc::new(c)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Refusal::not_found()),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(Refusal::access("Not a regular file")),
            Err(_) => Err(Refusal::access("Permission denied")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_cannot_be_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("XMLDefault.cnf.xml"), b"x").unwrap();
        std::fs::write(root.join("sub/a.cfg"), b"a").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/a.cfg"), root.join("inside")).unwrap();
        let fs = FsSource::new(&root, false).unwrap();
        assert!(fs.resolve("XMLDefault.cnf.xml").is_ok());
        assert!(fs.resolve("/XMLDefault.cnf.xml").is_ok(), "optional leading /");
        assert!(fs.resolve("sub/a.cfg").is_ok());
        assert!(fs.resolve("inside").is_ok(), "a link that stays inside is fine");
        for bad in ["../secret", "sub/../../secret", "/../secret", "link", "a\0b", "sub\\a.cfg", "//etc/passwd"] {
            let r = fs.resolve(bad).unwrap_err();
            assert_eq!(r.code, ErrorCode::AccessViolation, "{bad:?}");
        }
        assert_eq!(fs.resolve("missing").unwrap_err().code, ErrorCode::FileNotFound);
        assert_eq!(fs.resolve("xmldefault.CNF.XML").unwrap_err().code, ErrorCode::FileNotFound);
        let ci = FsSource::new(&root, true).unwrap();
        assert!(ci.resolve("xmlDefault.CNF.XML").is_ok());
        assert!(ci.resolve("SUB/A.CFG").is_ok());
    }
}
