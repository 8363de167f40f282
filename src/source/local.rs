//! The local `secrets.json` source, for development.
//!
//! The file is parsed once and kept. With `watch` (the default) every read first looks at
//! the file's size, modification time and inode (one `stat`, about a microsecond) and parses
//! it again when any changed, so an edit is seen by the very next call: no watcher thread,
//! no timer, nothing that keeps the process alive. Each fault has its own code and a message
//! that names the file and the key, never a value.

use super::FetchFuture;
use super::Source;
use super::SourceKind;
use crate::error::{ErrorCode, SecretError};
use crate::secret::{Secret, SecretString};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use zeroize::Zeroize;

pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let ino = 0;
        Stamp {
            modified: m.modified().ok(),
            len: m.len(),
            ino,
        }
    }
}

/// A file-wide fault; the key is added when a call reports it.
#[derive(Clone)]
struct Fault {
    code: ErrorCode,
    what: String,
}

/// A key's value, or the JSON type it wrongly has.
pub type FileValue = Result<SecretString, &'static str>;

type Parsed = HashMap<String, FileValue>;

struct Loaded {
    path: PathBuf,
    stamp: Stamp,
    parsed: Result<Arc<Parsed>, Fault>,
}

pub struct LocalSource {
    candidates: Vec<PathBuf>,
    watch: bool,
    loaded: Mutex<Option<Loaded>>,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(what: impl Into<String>) -> Fault {
    Fault {
        code: ErrorCode::LocalFileInvalid,
        what: what.into(),
    }
}

/// Parses the bytes of a secrets file into its keys (a value, or the JSON type it wrongly
/// has), or the fault's description. Never panics, whatever the bytes.
pub fn parse_secrets_file(bytes: &[u8]) -> Result<Vec<(String, FileValue)>, String> {
    parse(bytes)
        .map(|m| m.into_iter().collect())
        .map_err(|f| f.what)
}

fn parse(bytes: &[u8]) -> Result<Parsed, Fault> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid(
            "is empty; it must hold a JSON object of \"key\": \"value\" pairs",
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        // Only the position and the kind of fault: serde_json's own text could quote input.
        let kind = match e.classify() {
            serde_json::error::Category::Eof => "unexpected end of input",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "invalid data",
            serde_json::error::Category::Io => "read error",
        };
        invalid(format!(
            "is not valid JSON: {kind} at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    match value {
        Value::Object(map) => Ok(map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, Ok(SecretString::new(s))),
                other => (k, Err(json_type(&other))),
            })
            .collect()),
        other => Err(invalid(format!(
            "must hold a JSON object of \"key\": \"value\" pairs, not {}",
            json_type(&other)
        ))),
    }
}

/// Opens without blocking: the path was a regular file when looked at, but may have been
/// swapped for a FIFO since, whose open would wait for a writer.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        const O_NONBLOCK: i32 = 0o4000;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        const O_NONBLOCK: i32 = 0x0004;
        options.custom_flags(O_NONBLOCK);
    }
    options.open(path)
}

fn read_capped(path: &Path) -> Result<Vec<u8>, Fault> {
    let mut buf = Vec::new();
    let file =
        open_nonblocking(path).map_err(|e| invalid(format!("cannot be read ({})", e.kind())))?;
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(invalid("is not a regular file (a FIFO, socket or device)")),
        Err(e) => return Err(invalid(format!("cannot be read ({})", e.kind()))),
    }
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| invalid(format!("cannot be read ({})", e.kind())))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        buf.zeroize();
        return Err(invalid("is larger than 4 MiB"));
    }
    Ok(buf)
}

impl LocalSource {
    pub fn new(candidates: Vec<PathBuf>, watch: bool) -> Self {
        LocalSource {
            candidates,
            watch,
            loaded: Mutex::new(None),
        }
    }

    pub fn candidates(&self) -> &[PathBuf] {
        &self.candidates
    }

    /// The first candidate that exists, with its metadata.
    fn find(&self) -> Result<(PathBuf, Metadata), Fault> {
        for p in &self.candidates {
            match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => {
                    return Err(invalid(format!(
                        "{} is a directory, not a file",
                        p.display()
                    )))
                }
                // A FIFO, socket or device would block the reading thread (the JS thread,
                // for this source) or never end: refused before it is opened.
                Ok(m) if !m.is_file() => {
                    return Err(invalid(format!(
                        "{} is not a regular file (a FIFO, socket or device)",
                        p.display()
                    )))
                }
                Ok(m) => return Ok((p.clone(), m)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(invalid(format!(
                        "{} cannot be read ({})",
                        p.display(),
                        e.kind()
                    )))
                }
            }
        }
        let list: Vec<String> = self
            .candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Err(Fault {
            code: ErrorCode::LocalFileMissing,
            what: format!("no local secrets file; looked for {}", list.join(", ")),
        })
    }

    fn load(path: PathBuf, meta: &Metadata) -> Loaded {
        let stamp = Stamp::of(meta);
        let parsed = if meta.len() > MAX_FILE_BYTES {
            Err(invalid("is larger than 4 MiB"))
        } else {
            read_capped(&path).and_then(|mut bytes| {
                let parsed = parse(&bytes);
                bytes.zeroize();
                parsed.map(Arc::new)
            })
        };
        let parsed = parsed.map_err(|f| Fault {
            what: format!("{} {}", path.display(), f.what),
            ..f
        });
        Loaded {
            path,
            stamp,
            parsed,
        }
    }

    /// The current parse of the file (re-read when it changed), or the fault.
    fn current(&self) -> Result<(PathBuf, Arc<Parsed>), Fault> {
        let mut slot = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let (false, Some(l)) = (self.watch, slot.as_ref()) {
            return l.parsed.clone().map(|p| (l.path.clone(), p));
        }
        let found = self.find();
        let (path, meta) = match found {
            Ok(f) => f,
            Err(fault) => {
                *slot = None;
                return Err(fault);
            }
        };
        let fresh = match slot.as_ref() {
            Some(l) => l.path != path || l.stamp != Stamp::of(&meta),
            None => true,
        };
        if fresh {
            *slot = Some(LocalSource::load(path, &meta));
        }
        match slot.as_ref() {
            Some(l) => l.parsed.clone().map(|p| (l.path.clone(), p)),
            None => Err(invalid("could not be loaded")),
        }
    }

    fn read(&self, key: &str) -> Result<Secret, SecretError> {
        let fail = |f: Fault| SecretError::new(f.code, format!("secret '{key}': {}", f.what));
        let (path, parsed) = self.current().map_err(fail)?;
        match parsed.get(key) {
            Some(Ok(v)) => Ok(Secret::new(v.expose().to_owned())),
            Some(Err(ty)) => Err(SecretError::new(
                ErrorCode::LocalFileInvalid,
                format!(
                    "secret '{key}': its value in {} is {ty}; values must be strings",
                    path.display()
                ),
            )),
            None => Err(SecretError::new(
                ErrorCode::NotFound,
                format!("secret '{key}' is not in {}", path.display()),
            )),
        }
    }

    /// Every key of the file (for `validate`), or the file's fault.
    pub fn keys(&self) -> Result<Vec<String>, SecretError> {
        let (_, parsed) = self
            .current()
            .map_err(|f| SecretError::new(f.code, f.what))?;
        let mut keys: Vec<String> = parsed.keys().cloned().collect();
        keys.sort();
        Ok(keys)
    }

    /// The file in use, if any (for `doctor`).
    pub fn path_in_use(&self) -> Option<PathBuf> {
        self.find().ok().map(|(p, _)| p)
    }
}

impl Source for LocalSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Local
    }

    fn read_now(&self, key: &str) -> Option<Result<Secret, SecretError>> {
        Some(self.read(key))
    }

    fn fetch(
        self: Arc<Self>,
        key: String,
        _url: String,
        _deadline: tokio::time::Instant,
    ) -> FetchFuture {
        Box::pin(async move { self.read(&key) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("csm-local-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
        fn file(&self, text: &[u8]) -> PathBuf {
            let p = self.0.join("secrets.json");
            std::fs::write(&p, text).unwrap();
            p
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn err(src: &LocalSource, key: &str) -> SecretError {
        src.read(key).unwrap_err()
    }

    #[test]
    fn reads_values_and_reports_each_fault_apart() {
        let d = Dir::new("faults");
        let p = d.file(br#"{"a": "1", "n": 5, "o": {"x": "y"}}"#);
        let src = LocalSource::new(vec![p.clone()], true);
        assert_eq!(src.read("a").unwrap().value.expose(), "1");
        let e = err(&src, "n");
        assert_eq!(e.code, ErrorCode::LocalFileInvalid);
        assert!(
            e.message.contains("'n'") && e.message.contains("a number"),
            "{}",
            e.message
        );
        assert!(err(&src, "o").message.contains("an object"));
        let e = err(&src, "zz");
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(e.message.contains("'zz'") && e.message.contains(&p.display().to_string()));
    }

    #[test]
    fn file_faults() {
        let d = Dir::new("file-faults");
        for (text, needle) in [
            (&b""[..], "is empty"),
            (b"  \n", "is empty"),
            (b"{\n  \"a\": \"1\",\n  oops\n}", "line 3, column 3"),
            (b"[\"a\"]", "not an array"),
            (b"\"just a string\"", "not a string"),
            (b"42", "not a number"),
            (b"{\"a\": \"unterminated", "unexpected end of input"),
        ] {
            let p = d.file(text);
            let e = err(&LocalSource::new(vec![p.clone()], true), "a");
            assert_eq!(
                e.code,
                ErrorCode::LocalFileInvalid,
                "{}",
                String::from_utf8_lossy(text)
            );
            assert!(
                e.message.contains(needle),
                "{:?}: {}",
                String::from_utf8_lossy(text),
                e.message
            );
            assert!(e.message.contains(&p.display().to_string()));
        }
    }

    #[test]
    fn invalid_json_never_quotes_the_file() {
        let d = Dir::new("quote");
        let p = d.file(b"{\"a\": \"sentinel-value\" \"b\": 1}");
        let e = err(&LocalSource::new(vec![p], true), "a");
        assert!(!e.message.contains("sentinel"), "{}", e.message);
    }

    #[test]
    fn bom_is_accepted_and_big_files_are_refused() {
        let d = Dir::new("bom");
        let p = d.file(b"\xEF\xBB\xBF{\"a\": \"1\"}");
        assert_eq!(
            LocalSource::new(vec![p], true)
                .read("a")
                .unwrap()
                .value
                .expose(),
            "1"
        );
        let big = vec![b' '; (MAX_FILE_BYTES + 1) as usize];
        let p = d.file(&big);
        assert!(err(&LocalSource::new(vec![p], true), "a")
            .message
            .contains("larger than 4 MiB"));
    }

    #[test]
    fn missing_file_lists_every_path() {
        let d = Dir::new("missing");
        let (a, b) = (
            d.0.join("build/secrets/secrets.json"),
            d.0.join("secrets/secrets.json"),
        );
        let src = LocalSource::new(vec![a.clone(), b.clone()], true);
        let e = err(&src, "k");
        assert_eq!(e.code, ErrorCode::LocalFileMissing);
        assert!(
            e.message.contains(&a.display().to_string())
                && e.message.contains(&b.display().to_string())
        );
        // The first that exists wins, and it is picked up once it appears.
        std::fs::create_dir_all(b.parent().unwrap()).unwrap();
        std::fs::write(&b, r#"{"k": "from-b"}"#).unwrap();
        assert_eq!(src.read("k").unwrap().value.expose(), "from-b");
        std::fs::create_dir_all(a.parent().unwrap()).unwrap();
        std::fs::write(&a, r#"{"k": "from-a"}"#).unwrap();
        assert_eq!(src.read("k").unwrap().value.expose(), "from-a");
    }

    #[test]
    fn edits_are_seen_by_the_next_read_and_a_bad_edit_is_reported_until_fixed() {
        let d = Dir::new("edits");
        let p = d.file(br#"{"k": "v1"}"#);
        let src = LocalSource::new(vec![p.clone()], true);
        assert_eq!(src.read("k").unwrap().value.expose(), "v1");
        std::fs::write(&p, br#"{"k": "v2-longer"}"#).unwrap();
        assert_eq!(src.read("k").unwrap().value.expose(), "v2-longer");
        std::fs::write(&p, b"{ broken").unwrap();
        assert_eq!(err(&src, "k").code, ErrorCode::LocalFileInvalid);
        assert_eq!(err(&src, "k").code, ErrorCode::LocalFileInvalid);
        std::fs::write(&p, br#"{"k": "v3"}"#).unwrap();
        assert_eq!(src.read("k").unwrap().value.expose(), "v3");
    }

    #[test]
    fn without_watch_the_first_parse_is_kept() {
        let d = Dir::new("nowatch");
        let p = d.file(br#"{"k": "v1"}"#);
        let src = LocalSource::new(vec![p.clone()], false);
        assert_eq!(src.read("k").unwrap().value.expose(), "v1");
        std::fs::write(&p, br#"{"k": "v2-longer"}"#).unwrap();
        assert_eq!(src.read("k").unwrap().value.expose(), "v1");
    }

    #[test]
    fn keys_are_listed_sorted() {
        let d = Dir::new("keys");
        let p = d.file(br#"{"b": "1", "a": "2"}"#);
        assert_eq!(LocalSource::new(vec![p], true).keys().unwrap(), ["a", "b"]);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"{}[]\",:\\ an1\xEF\xBB\xBFtrue"[(seed % 19) as usize]
                })
                .collect();
            let _ = parse(&bytes);
        }
    }
}
