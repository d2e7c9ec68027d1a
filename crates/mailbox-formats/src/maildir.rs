//! Maildir / Maildir++ reading, as Dovecot and Courier lay it out.
//!
//! The root directory is `INBOX`; every subdirectory whose name starts with a
//! dot and that has `cur/` or `new/` is a Maildir++ folder (`.Archive.2024` is
//! `Archive/2024`, names decoded from IMAP modified UTF-7 when valid). `tmp/`
//! and Dovecot's index/uidlist files are ignored.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::Error;
use crate::eol::{crlf_len, to_crlf};
use crate::mutf7;

/// Maildir info-letter to IMAP system flag mapping.
const SYSTEM_FLAGS: [(char, &str); 5] = [
    ('S', "\\Seen"),
    ('R', "\\Answered"),
    ('F', "\\Flagged"),
    ('D', "\\Draft"),
    ('T', "\\Deleted"),
];

/// One folder of a Maildir tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirFolder {
    /// `INBOX` for the root; `Sent` for `.Sent`, `Archive/2024` for
    /// `.Archive.2024`.
    pub name: String,
    /// Messages sorted by (`internal_date`, file name).
    pub messages: Vec<MaildirMessage>,
}

/// One message file of a Maildir folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirMessage {
    /// Full path of the message file.
    pub path: PathBuf,
    /// IMAP flags from the `:2,` info part: system flags in the order
    /// `\Seen`, `\Answered`, `\Flagged`, `\Draft`, `\Deleted`, then keywords
    /// (named by `dovecot-keywords`) in letter order.
    pub flags: Vec<String>,
    /// The file's mtime in unix seconds (Dovecot's received date).
    pub internal_date: i64,
    /// File size in bytes (LF line endings, so a lower bound of the CRLF size).
    pub size_hint: u64,
    /// True if the file was in `new/`.
    pub is_new: bool,
}

impl MaildirMessage {
    /// Reads the message, converting line endings to CRLF. Fails with
    /// [`Error::FileTooLarge`] if the converted message exceeds `max_size`.
    pub fn read(&self, max_size: usize) -> Result<Vec<u8>, Error> {
        let too_large = |size: u64| Error::FileTooLarge {
            path: self.path.clone(),
            size,
            max: max_size,
        };
        let meta = fs::metadata(&self.path).map_err(|e| Error::io(&self.path, e))?;
        if meta.len() > max_size as u64 {
            return Err(too_large(meta.len()));
        }
        let raw = fs::read(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let len = crlf_len(&raw);
        if len > max_size {
            return Err(too_large(len as u64));
        }
        Ok(to_crlf(&raw))
    }
}

fn is_dir(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_dir())
}

fn is_maildir(p: &Path) -> bool {
    is_dir(&p.join("cur")) || is_dir(&p.join("new"))
}

/// Reads the folder list and message metadata of a Maildir tree.
///
/// `path` is either a Maildir root (it has `cur/` and/or `new/`) or a Dovecot
/// mail home containing a `Maildir` subdirectory. The result lists `INBOX`
/// first, then the other folders sorted by name. Message contents are not
/// read; use [`MaildirMessage::read`].
pub fn read_maildir(path: &Path) -> Result<Vec<MaildirFolder>, Error> {
    fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let root = if is_maildir(path) {
        path.to_path_buf()
    } else if is_maildir(&path.join("Maildir")) {
        path.join("Maildir")
    } else {
        return Err(Error::NotMaildir {
            path: path.to_path_buf(),
        });
    };

    let root_keywords = read_keywords(&root)?;
    let mut folders = vec![read_folder("INBOX".to_string(), &root, &root_keywords)?];

    let mut others = Vec::new();
    let entries = fs::read_dir(&root).map_err(|e| Error::io(&root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&root, e))?;
        let file_name = entry.file_name();
        let Some(raw) = file_name.to_str() else {
            continue; // not UTF-8: not a name Dovecot or Courier would create
        };
        let Some(stripped) = raw.strip_prefix('.') else {
            continue;
        };
        if stripped.is_empty() || stripped == "." {
            continue;
        }
        let dir = entry.path();
        if !is_maildir(&dir) {
            continue;
        }
        others.push((folder_name(stripped), dir));
    }
    others.sort();
    for (name, dir) in others {
        let own = read_keywords(&dir)?;
        let keywords = if own.is_empty() { &root_keywords } else { &own };
        folders.push(read_folder(name, &dir, keywords)?);
    }
    Ok(folders)
}

/// `Archive.2024` -> `Archive/2024`, each component decoded from modified
/// UTF-7 when that is valid.
fn folder_name(stripped: &str) -> String {
    stripped
        .split('.')
        .map(|part| mutf7::decode(part).unwrap_or_else(|| part.to_string()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses `dovecot-keywords` ("0 $Junk" per line) into letter index -> name.
fn read_keywords(dir: &Path) -> Result<HashMap<u8, String>, Error> {
    let path = dir.join("dovecot-keywords");
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let text = String::from_utf8_lossy(&text);
    let mut map = HashMap::new();
    for line in text.lines() {
        let Some((idx, name)) = line.trim().split_once(char::is_whitespace) else {
            continue;
        };
        let name = name.trim();
        if let Ok(idx) = idx.parse::<u8>()
            && idx < 26
            && !name.is_empty()
        {
            map.insert(idx, name.to_string());
        }
    }
    Ok(map)
}

fn read_folder(
    name: String,
    dir: &Path,
    keywords: &HashMap<u8, String>,
) -> Result<MaildirFolder, Error> {
    let mut messages = Vec::new();
    for (sub, is_new) in [("new", true), ("cur", false)] {
        let subdir = dir.join(sub);
        let entries = match fs::read_dir(&subdir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(subdir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&subdir, e))?;
            let file_name = entry.file_name();
            let name = file_name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // Follow symlinks; skip anything that is not a regular file.
            let meta = match fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // raced away
                Err(e) => return Err(Error::io(path, e)),
            };
            let internal_date = meta
                .modified()
                .map_or(0, |t| match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
                });
            messages.push(MaildirMessage {
                flags: parse_flags(&name, keywords),
                path,
                internal_date,
                size_hint: meta.len(),
                is_new,
            });
        }
    }
    messages.sort_by(|a, b| {
        (a.internal_date, a.path.file_name()).cmp(&(b.internal_date, b.path.file_name()))
    });
    Ok(MaildirFolder { name, messages })
}

/// Flags from a file name's `:2,<letters>` info part (`;2,` is accepted too,
/// as used on filesystems without colons).
fn parse_flags(file_name: &str, keywords: &HashMap<u8, String>) -> Vec<String> {
    let info = file_name
        .rfind(":2,")
        .or_else(|| file_name.rfind(";2,"))
        .map_or("", |i| &file_name[i + 3..]);
    let mut flags: Vec<String> = SYSTEM_FLAGS
        .iter()
        .filter(|(c, _)| info.contains(*c))
        .map(|(_, f)| (*f).to_string())
        .collect();
    for letter in b'a'..=b'z' {
        if info.as_bytes().contains(&letter)
            && let Some(kw) = keywords.get(&(letter - b'a'))
        {
            flags.push(kw.clone());
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::time::{Duration, SystemTime};

    fn put(path: &Path, content: &[u8], mtime: i64) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime as u64))
            .unwrap();
    }

    fn names(folders: &[MaildirFolder]) -> Vec<&str> {
        folders.iter().map(|f| f.name.as_str()).collect()
    }

    fn file_names(folder: &MaildirFolder) -> Vec<String> {
        folder
            .messages
            .iter()
            .map(|m| m.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    /// Builds a Dovecot-style Maildir at `root`.
    fn build(root: &Path) {
        put(
            &root.join("new/1700000300.M1P1.host"),
            b"Subject: new\n\nhello\n",
            1_700_000_300,
        );
        put(
            &root.join("cur/1700000100.M2P1.host,S=20:2,FSac"),
            b"Subject: one\r\n\r\ncrlf already\r\n",
            1_700_000_100,
        );
        put(
            &root.join("cur/1700000100.M1P1.host:2,RTbz"),
            b"Subject: zero\n\nlone\rcr\n",
            1_700_000_100,
        );
        put(
            &root.join("cur/1700000200.M3P1.host:2,"),
            b"x\n",
            1_700_000_200,
        );
        put(
            &root.join("tmp/1700000400.M9P1.host"),
            b"partial",
            1_700_000_400,
        );
        put(&root.join("cur/.hidden"), b"x", 1);
        fs::create_dir_all(root.join("cur/subdir")).unwrap();
        put(&root.join("dovecot-uidlist"), b"3 V1 N4\n", 1);
        put(&root.join("dovecot.index.log"), b"\0\0", 1);
        put(
            &root.join("dovecot-keywords"),
            b"0 $Junk\n1 Work\n2 $Forwarded\n",
            1,
        );
        put(
            &root.join(".Sent/cur/1700000500.M1P1.host:2,S"),
            b"s\n",
            1_700_000_500,
        );
        put(
            &root.join(".Archive.2024/new/1600000000.M1P1.host"),
            b"a\n",
            1_600_000_000,
        );
        put(
            &root.join(".Archive.2024/dovecot-keywords"),
            b"0 Personal\n",
            1,
        );
        put(
            &root.join(".Archive.2024/cur/1600000001.M1P1.host:2,a"),
            b"a\n",
            1_600_000_001,
        );
        put(&root.join(".R&AOk-sum&AOk-/cur/1.M1P1.h:2,"), b"r\n", 1);
        fs::create_dir_all(root.join(".NotAFolder/tmp")).unwrap();
        fs::create_dir_all(root.join(".Empty/cur")).unwrap();
        fs::create_dir_all(root.join("Plain/cur")).unwrap();
    }

    #[test]
    fn reads_tree() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let folders = read_maildir(dir.path()).unwrap();
        assert_eq!(
            names(&folders),
            vec!["INBOX", "Archive/2024", "Empty", "Résumé", "Sent"]
        );

        let inbox = &folders[0];
        assert_eq!(
            file_names(inbox),
            vec![
                "1700000100.M1P1.host:2,RTbz",
                "1700000100.M2P1.host,S=20:2,FSac",
                "1700000200.M3P1.host:2,",
                "1700000300.M1P1.host",
            ]
        );
        let flags: Vec<Vec<String>> = inbox.messages.iter().map(|m| m.flags.clone()).collect();
        assert_eq!(
            flags,
            vec![
                vec!["\\Answered".to_string(), "\\Deleted".into(), "Work".into()],
                vec![
                    "\\Seen".to_string(),
                    "\\Flagged".into(),
                    "$Junk".into(),
                    "$Forwarded".into()
                ],
                vec![],
                vec![],
            ]
        );
        let m = &inbox.messages;
        assert_eq!(
            m.iter().map(|m| m.is_new).collect::<Vec<_>>(),
            vec![false, false, false, true]
        );
        assert_eq!(m[0].internal_date, 1_700_000_100);
        assert_eq!(m[3].internal_date, 1_700_000_300);
        assert_eq!(m[0].size_hint, 23);
        assert_eq!(
            m[0].read(1000).unwrap(),
            b"Subject: zero\r\n\r\nlone\rcr\r\n".to_vec()
        );
        assert_eq!(
            m[1].read(1000).unwrap(),
            b"Subject: one\r\n\r\ncrlf already\r\n".to_vec()
        );
        // "Subject: new\n\nhello\n" is 20 bytes, 23 with CRLF.
        assert_eq!(m[3].read(23).unwrap().len(), 23);
        assert!(matches!(
            m[3].read(22),
            Err(Error::FileTooLarge {
                size: 23,
                max: 22,
                ..
            })
        ));
        assert!(matches!(
            m[3].read(19),
            Err(Error::FileTooLarge { size: 20, .. })
        ));

        let archive = &folders[1];
        assert_eq!(
            file_names(archive),
            vec!["1600000000.M1P1.host", "1600000001.M1P1.host:2,a"]
        );
        // The folder's own dovecot-keywords wins over the root's.
        assert_eq!(archive.messages[1].flags, vec!["Personal"]);
        assert!(folders[2].messages.is_empty());
        assert_eq!(folders[4].messages.len(), 1);
        assert_eq!(folders[4].messages[0].flags, vec!["\\Seen"]);
    }

    #[test]
    fn mail_home_with_maildir_subdir() {
        let dir = tempfile::tempdir().unwrap();
        build(&dir.path().join("Maildir"));
        put(&dir.path().join(".dovecot.sieve"), b"keep;", 1);
        let folders = read_maildir(dir.path()).unwrap();
        assert_eq!(
            names(&folders),
            vec!["INBOX", "Archive/2024", "Empty", "Résumé", "Sent"]
        );
        assert_eq!(folders[0].messages.len(), 4);
        assert!(
            folders[0].messages[0]
                .path
                .starts_with(dir.path().join("Maildir/cur"))
        );
    }

    #[test]
    fn only_new_dir_is_enough() {
        let dir = tempfile::tempdir().unwrap();
        put(&dir.path().join("new/1.a"), b"x\n", 5);
        let folders = read_maildir(dir.path()).unwrap();
        assert_eq!(names(&folders), vec!["INBOX"]);
        assert_eq!(folders[0].messages[0].internal_date, 5);
        assert!(folders[0].messages[0].is_new);
    }

    #[test]
    fn not_a_maildir() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let err = read_maildir(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotMaildir { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "not a Maildir: {} has no cur/ or new/ (and no Maildir/ subdirectory that has)",
                dir.path().display()
            )
        );
        let missing = dir.path().join("nope");
        assert!(matches!(read_maildir(&missing), Err(Error::Io { path, .. }) if path == missing));
    }

    #[test]
    fn flag_parsing() {
        let kw: HashMap<u8, String> = [(0, "$Junk".to_string()), (25, "Last".to_string())].into();
        assert_eq!(
            parse_flags("x:2,DFPRSTaz", &kw),
            vec![
                "\\Seen",
                "\\Answered",
                "\\Flagged",
                "\\Draft",
                "\\Deleted",
                "$Junk",
                "Last"
            ]
        );
        assert_eq!(parse_flags("x;2,S", &kw), vec!["\\Seen"]);
        assert!(parse_flags("x:2,bq", &kw).is_empty());
        assert!(parse_flags("noinfo", &kw).is_empty());
        assert!(parse_flags("x:1,S", &kw).is_empty());
    }
}
