//! The identity's own files (the workload identity token file, the client certificate PEM, the
//! Azure Arc key): small regular files, read so that a FIFO, a directory or a device can never
//! block the read or pin a thread. On unix the file is opened with `O_NONBLOCK` (a FIFO with no
//! writer opens at once instead of waiting for one), its type is checked on the opened file
//! (`fstat`: no gap between the check and the read), and at most `max` bytes are read.

use std::io::Read;
use std::path::Path;

/// What kind of non-regular file this is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    "not a regular file"
}

/// The bytes of the small regular file at `path` (at most `max`), or why not, in words that
/// start with the path (e.g. "/x/token is a FIFO (named pipe), not a regular file").
pub fn read_small_regular(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = open
        .open(path)
        .map_err(|e| format!("{shown} cannot be read ({})", e.kind()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{shown} cannot be read ({})", e.kind()))?;
    if !meta.is_file() {
        return Err(format!(
            "{shown} is {}, not a regular file; it was not read",
            kind_of(&meta)
        ));
    }
    if meta.len() > max {
        return Err(format!("{shown} is larger than {} KiB", max / 1024));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    let read = file.take(max.saturating_add(1)).read_to_end(&mut bytes);
    if let Err(e) = read {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(format!("{shown} cannot be read ({})", e.kind()));
    }
    if bytes.len() as u64 > max {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(format!("{shown} is larger than {} KiB", max / 1024));
    }
    Ok(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("csm-files-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join("token");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(read_small_regular(&f, 10).unwrap(), b"abc");
        assert!(read_small_regular(&f, 2)
            .unwrap_err()
            .contains("larger than"));
        assert!(read_small_regular(&dir, 10)
            .unwrap_err()
            .contains("is a directory, not a regular file"));
        assert!(read_small_regular(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .contains("is a device"));
        assert!(read_small_regular(&dir.join("nope"), 10)
            .unwrap_err()
            .contains("cannot be read ("));
        // A FIFO with no writer: refused at once (opening it blocking would wait forever).
        use std::os::unix::ffi::OsStrExt;
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_small_regular(&fifo, 10)
            .unwrap_err()
            .contains("is a FIFO (named pipe), not a regular file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
