//! Unpacking tar, tar.gz/tgz, zip and single-file gzip archives into an artifact's destination,
//! entry by entry, so that nothing lands outside it: entries with absolute paths or `..`,
//! symlinks that point out, hard links to outside files and paths that run through a symlink
//! already on disk (a task can leave one in its own `local/` between restarts) are refused
//! ("zip-slip"). Sizes and entry counts are capped by the node's decompression limits.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::ArtifactError;

/// go-getter's archive formats that drover unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGz,
    Zip,
    /// A single gzip-compressed file.
    Gz,
}

impl ArchiveKind {
    /// The format a file name says, as go-getter guesses it from the URL's path.
    pub fn from_name(name: &str) -> Option<ArchiveKind> {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Some(ArchiveKind::TarGz)
        } else if n.ends_with(".tar") {
            Some(ArchiveKind::Tar)
        } else if n.ends_with(".zip") {
            Some(ArchiveKind::Zip)
        } else if n.ends_with(".gz") {
            Some(ArchiveKind::Gz)
        } else {
            None
        }
    }

    /// go-getter's `archive` option: `false` turns unpacking off, a format forces it.
    pub fn from_option(value: &str) -> Result<Option<ArchiveKind>, String> {
        match value.to_ascii_lowercase().as_str() {
            "false" | "" => Ok(None),
            "tar" => Ok(Some(ArchiveKind::Tar)),
            "tar.gz" | "tgz" => Ok(Some(ArchiveKind::TarGz)),
            "zip" => Ok(Some(ArchiveKind::Zip)),
            "gz" => Ok(Some(ArchiveKind::Gz)),
            other => Err(format!(
                "unsupported archive format {other:?}: expected tar, tar.gz, tgz, zip, gz or false"
            )),
        }
    }
}

/// The node's caps on what one artifact may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    pub max_bytes: u64,
    pub max_files: u64,
}

/// Unpacks `archive` into `dest` (created if missing); `name` is the fetched file's name (a
/// single gzip file is written under it without `.gz`). Returns the number of files written.
pub fn unpack(
    kind: ArchiveKind,
    archive: &Path,
    name: &str,
    dest: &Path,
    limits: UnpackLimits,
    cancel: &AtomicBool,
) -> Result<u64, ArtifactError> {
    let mut out = Writer::create(dest, limits, cancel)?;
    let file = File::open(archive).map_err(|e| ArtifactError::io("open", archive, e))?;
    match kind {
        ArchiveKind::Tar => out.tar(tar::Archive::new(file))?,
        ArchiveKind::TarGz => {
            out.tar(tar::Archive::new(flate2::read::MultiGzDecoder::new(file)))?
        }
        ArchiveKind::Zip => out.zip(file)?,
        ArchiveKind::Gz => {
            let base = name.strip_suffix(".gz").unwrap_or(name);
            let rel = entry_path(base)?;
            let mut decoder = flate2::read::MultiGzDecoder::new(file);
            out.file(&rel, &mut decoder, 0o644)?;
        }
    }
    Ok(out.files)
}

/// Copies the directory `src` (a `file://` source) into `dest` under the same limits and
/// checks as an archive. Symlinks are refused: what they point to is the source host's.
pub fn copy_tree(
    src: &Path,
    dest: &Path,
    limits: UnpackLimits,
    cancel: &AtomicBool,
) -> Result<u64, ArtifactError> {
    let mut out = Writer::create(dest, limits, cancel)?;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| ArtifactError::io("read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ArtifactError::io("read", &dir, e))?;
            let rel = rel.join(entry.file_name());
            let name = rel.display().to_string();
            let meta = std::fs::symlink_metadata(entry.path())
                .map_err(|e| ArtifactError::io("inspect", &entry.path(), e))?;
            if meta.is_dir() {
                out.dir(&name, &rel)?;
                stack.push(rel);
            } else if meta.is_file() {
                let path = entry.path();
                let mut f = File::open(&path).map_err(|e| ArtifactError::io("open", &path, e))?;
                out.file(&rel, &mut f, meta.permissions().mode())?;
            } else {
                return Err(ArtifactError::unsafe_entry(
                    &name,
                    "is not a plain file or directory (file:// directories are copied without links)",
                ));
            }
        }
    }
    Ok(out.files)
}

/// Creates `rel` under the canonical directory `root` one component at a time, never
/// following a symlink out of `root`; returns the directory's canonical path.
pub fn dir_within(root: &Path, name: &str, rel: &Path) -> Result<PathBuf, ArtifactError> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = at
                    .canonicalize()
                    .map_err(|e| ArtifactError::io("resolve", &at, e))?;
                if !real.starts_with(root) {
                    return Err(ArtifactError::unsafe_entry(
                        name,
                        format!(
                            "runs through {} which points outside the destination",
                            at.display()
                        ),
                    ));
                }
                if !real.is_dir() {
                    return Err(ArtifactError::unsafe_entry(
                        name,
                        format!("needs {} to be a directory", at.display()),
                    ));
                }
                at = real;
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ArtifactError::unsafe_entry(
                    name,
                    format!("needs {} to be a directory, but it is a file", at.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(|e| ArtifactError::io("create", &at, e))?;
            }
            Err(e) => return Err(ArtifactError::io("inspect", &at, e)),
        }
    }
    Ok(at)
}

struct Writer<'a> {
    /// The destination, canonical: every write is checked against it.
    root: PathBuf,
    /// Bytes still allowed.
    budget: u64,
    limits: UnpackLimits,
    files: u64,
    cancel: &'a AtomicBool,
}

/// An entry's name as a path relative to the destination, or why it is refused.
fn entry_path(name: &str) -> Result<PathBuf, ArtifactError> {
    let mut rel = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ArtifactError::unsafe_entry(
                    name,
                    "escapes the destination (..)",
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArtifactError::unsafe_entry(name, "has an absolute path"));
            }
        }
    }
    Ok(rel)
}

/// Where a symlink at `rel` pointing to `target` lands, relative to the destination; refused
/// when it is absolute or climbs above the destination.
fn link_target(name: &str, rel: &Path, target: &Path) -> Result<PathBuf, ArtifactError> {
    if target.is_absolute() {
        return Err(ArtifactError::unsafe_entry(
            name,
            format!("is a symlink to the absolute path {}", target.display()),
        ));
    }
    let mut at: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Normal(_) => at.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                if at.pop().is_none() {
                    return Err(ArtifactError::unsafe_entry(
                        name,
                        format!(
                            "is a symlink to {} outside the destination",
                            target.display()
                        ),
                    ));
                }
            }
            Component::RootDir | Component::Prefix(_) => unreachable!("relative target"),
        }
    }
    Ok(at.iter().collect())
}

impl<'a> Writer<'a> {
    /// Creates `dest` if missing and writes below it, checked against its canonical path.
    fn create(
        dest: &Path,
        limits: UnpackLimits,
        cancel: &'a AtomicBool,
    ) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dest).map_err(|e| ArtifactError::io("create", dest, e))?;
        let root = dest
            .canonicalize()
            .map_err(|e| ArtifactError::io("resolve", dest, e))?;
        Ok(Writer {
            root,
            budget: limits.max_bytes,
            limits,
            files: 0,
            cancel,
        })
    }
    fn check_cancel(&self) -> Result<(), ArtifactError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(ArtifactError::Cancelled);
        }
        Ok(())
    }

    fn count_file(&mut self, name: &str) -> Result<(), ArtifactError> {
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(ArtifactError::TooManyFiles {
                entry: name.to_string(),
                limit: self.limits.max_files,
            });
        }
        Ok(())
    }

    fn dir(&self, name: &str, rel: &Path) -> Result<PathBuf, ArtifactError> {
        dir_within(&self.root, name, rel)
    }

    /// The host path for a non-directory entry at `rel`, its parent created and whatever was
    /// there before removed (go-getter overwrites; a symlink left there is replaced, not
    /// followed).
    fn slot(&self, name: &str, rel: &Path) -> Result<PathBuf, ArtifactError> {
        let Some(file_name) = rel.file_name() else {
            return Err(ArtifactError::unsafe_entry(name, "has no file name"));
        };
        let parent = self.dir(name, rel.parent().unwrap_or(Path::new("")))?;
        let path = parent.join(file_name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                return Err(ArtifactError::unsafe_entry(
                    name,
                    format!("would replace the directory {}", path.display()),
                ));
            }
            Ok(_) => {
                std::fs::remove_file(&path).map_err(|e| ArtifactError::io("replace", &path, e))?
            }
            Err(_) => {}
        }
        Ok(path)
    }

    fn file(&mut self, rel: &Path, data: &mut dyn Read, mode: u32) -> Result<(), ArtifactError> {
        let name = rel.display().to_string();
        self.check_cancel()?;
        self.count_file(&name)?;
        let path = self.slot(&name, rel)?;
        let mut f = File::create(&path).map_err(|e| ArtifactError::io("create", &path, e))?;
        copy_capped(
            data,
            &mut f,
            &mut self.budget,
            self.limits.max_bytes,
            self.cancel,
            &path,
        )?;
        // Only the permission bits: setuid/setgid from an archive are not honoured.
        let perms = std::fs::Permissions::from_mode((mode & 0o777) | 0o600);
        std::fs::set_permissions(&path, perms).map_err(|e| ArtifactError::io("chmod", &path, e))?;
        Ok(())
    }

    fn symlink(&mut self, name: &str, rel: &Path, target: &Path) -> Result<(), ArtifactError> {
        self.count_file(name)?;
        link_target(name, rel, target)?;
        let path = self.slot(name, rel)?;
        std::os::unix::fs::symlink(target, &path).map_err(|e| ArtifactError::io("link", &path, e))
    }

    fn tar<R: Read>(&mut self, mut archive: tar::Archive<R>) -> Result<(), ArtifactError> {
        let entries = archive.entries().map_err(ArtifactError::archive)?;
        for entry in entries {
            self.check_cancel()?;
            let mut entry = entry.map_err(ArtifactError::archive)?;
            let raw = entry.path().map_err(ArtifactError::archive)?.into_owned();
            let name = raw.display().to_string();
            let rel = entry_path(&name)?;
            let kind = entry.header().entry_type();
            let mode = entry.header().mode().unwrap_or(0o644);
            match kind {
                tar::EntryType::Directory => {
                    self.dir(&name, &rel)?;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    self.file(&rel, &mut entry, mode)?;
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name()
                        .map_err(ArtifactError::archive)?
                        .ok_or_else(|| {
                            ArtifactError::unsafe_entry(&name, "is a symlink without a target")
                        })?
                        .into_owned();
                    self.symlink(&name, &rel, &target)?;
                }
                tar::EntryType::Link => {
                    // A hard link names another entry of the archive: copied, so that it can
                    // never share an inode with anything outside the destination.
                    let target = entry
                        .link_name()
                        .map_err(ArtifactError::archive)?
                        .ok_or_else(|| {
                            ArtifactError::unsafe_entry(&name, "is a hard link without a target")
                        })?
                        .into_owned();
                    let src_rel = entry_path(&target.display().to_string())?;
                    let src = self.root.join(&src_rel);
                    let meta = std::fs::symlink_metadata(&src)
                        .map_err(|e| ArtifactError::io("inspect", &src, e))?;
                    if !meta.is_file() {
                        return Err(ArtifactError::unsafe_entry(
                            &name,
                            format!(
                                "is a hard link to {} which is not a file of the archive",
                                target.display()
                            ),
                        ));
                    }
                    let mut f = File::open(&src).map_err(|e| ArtifactError::io("open", &src, e))?;
                    self.file(&rel, &mut f, meta.permissions().mode())?;
                }
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
                other => {
                    return Err(ArtifactError::unsafe_entry(
                        &name,
                        format!(
                            "has an unsupported type ({other:?}): only files, directories and links are unpacked"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn zip(&mut self, file: File) -> Result<(), ArtifactError> {
        let mut archive = zip::ZipArchive::new(file).map_err(ArtifactError::archive)?;
        for i in 0..archive.len() {
            self.check_cancel()?;
            let mut entry = archive.by_index(i).map_err(ArtifactError::archive)?;
            let name = entry.name().map_err(ArtifactError::archive)?.into_owned();
            let rel = entry_path(&name)?;
            if entry.is_dir() {
                self.dir(&name, &rel)?;
            } else if entry.is_symlink() {
                let mut target = String::new();
                (&mut entry)
                    .take(4096)
                    .read_to_string(&mut target)
                    .map_err(ArtifactError::archive)?;
                self.symlink(&name, &rel, Path::new(&target))?;
            } else {
                let mode = entry.unix_mode().unwrap_or(0o644);
                self.file(&rel, &mut entry, mode)?;
            }
        }
        Ok(())
    }
}

/// Copies at most `budget` bytes; one more is an error naming the limit.
pub(crate) fn copy_capped(
    from: &mut dyn Read,
    to: &mut dyn Write,
    budget: &mut u64,
    limit: u64,
    cancel: &AtomicBool,
    path: &Path,
) -> Result<u64, ArtifactError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(ArtifactError::Cancelled);
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArtifactError::archive(e)),
        };
        if n as u64 > *budget {
            return Err(ArtifactError::TooLarge {
                limit,
                option: "decompression_size_limit",
            });
        }
        *budget -= n as u64;
        total += n as u64;
        to.write_all(&buf[..n])
            .map_err(|e| ArtifactError::io("write", path, e))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: UnpackLimits = UnpackLimits {
        max_bytes: 1 << 20,
        max_files: 100,
    };

    fn tar_with(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            // set_path refuses `..`, which is exactly what a hostile archive carries.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if let Some(l) = link {
                let lb = l.as_bytes();
                h.as_old_mut().linkname[..lb.len()].copy_from_slice(lb);
            }
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    fn run(kind: ArchiveKind, bytes: &[u8], dest: &Path) -> Result<u64, ArtifactError> {
        let tmp = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(tmp.path(), bytes).expect("write");
        unpack(kind, tmp.path(), "a", dest, LIMITS, &AtomicBool::new(false))
    }

    #[test]
    fn a_tar_gz_unpacks_with_its_directories() {
        let tar = tar_with(&[
            ("config/", tar::EntryType::Directory, b"", None),
            (
                "config/config.json",
                tar::EntryType::Regular,
                b"{\"a\":1}",
                None,
            ),
            (
                "config/link.json",
                tar::EntryType::Symlink,
                b"",
                Some("config.json"),
            ),
            (
                "config/hard.json",
                tar::EntryType::Link,
                b"",
                Some("config/config.json"),
            ),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gz");
        let dir = tempfile::tempdir().expect("dir");
        let n = run(ArchiveKind::TarGz, &gz.finish().expect("gz"), dir.path()).expect("unpack");
        assert_eq!(n, 3);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).expect(p);
        assert_eq!(read("config/config.json"), "{\"a\":1}");
        assert_eq!(read("config/link.json"), "{\"a\":1}");
        assert_eq!(read("config/hard.json"), "{\"a\":1}");
    }

    #[test]
    fn entries_escaping_the_destination_are_refused() {
        let outer = tempfile::tempdir().expect("dir");
        let dest = outer.path().join("dest");
        for (entries, want) in [
            (
                vec![("../evil", tar::EntryType::Regular, &b"x"[..], None)],
                "escapes the destination",
            ),
            (
                vec![("/etc/evil", tar::EntryType::Regular, &b"x"[..], None)],
                "absolute path",
            ),
            (
                vec![("up", tar::EntryType::Symlink, &b""[..], Some("../.."))],
                "outside the destination",
            ),
            (
                vec![("abs", tar::EntryType::Symlink, &b""[..], Some("/etc"))],
                "absolute path /etc",
            ),
            (
                vec![(
                    "h",
                    tar::EntryType::Link,
                    &b""[..],
                    Some("../../etc/passwd"),
                )],
                "escapes the destination",
            ),
        ] {
            let e = run(ArchiveKind::Tar, &tar_with(&entries), &dest).expect_err("refused");
            assert!(e.to_string().contains(want), "{e} (want {want:?})");
        }
        assert!(!outer.path().join("evil").exists());
    }

    #[test]
    fn a_symlink_left_in_the_destination_is_not_followed_out() {
        let outer = tempfile::tempdir().expect("dir");
        let dest = outer.path().join("dest");
        let victim = outer.path().join("victim");
        std::fs::create_dir_all(&dest).expect("dest");
        std::fs::create_dir_all(&victim).expect("victim");
        std::os::unix::fs::symlink(&victim, dest.join("config")).expect("symlink");
        let tar = tar_with(&[("config/x", tar::EntryType::Regular, b"x", None)]);
        let e = run(ArchiveKind::Tar, &tar, &dest).expect_err("refused");
        assert!(
            e.to_string().contains("points outside the destination"),
            "{e}"
        );
        assert!(!victim.join("x").exists());
        // A file-shaped symlink is replaced, not written through.
        std::fs::write(victim.join("f"), "keep").expect("victim file");
        std::os::unix::fs::symlink(victim.join("f"), dest.join("f")).expect("symlink");
        run(
            ArchiveKind::Tar,
            &tar_with(&[("f", tar::EntryType::Regular, b"new", None)]),
            &dest,
        )
        .expect("unpack");
        assert_eq!(
            std::fs::read_to_string(victim.join("f")).expect("read"),
            "keep"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("f")).expect("read"),
            "new"
        );
    }

    #[test]
    fn zip_slip_is_refused_and_a_good_zip_unpacks() {
        let zip_of = |names: &[&str]| {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for n in names {
                w.start_file(*n, zip::write::SimpleFileOptions::default())
                    .expect("start");
                w.write_all(b"data").expect("write");
            }
            w.finish().expect("finish").into_inner()
        };
        let outer = tempfile::tempdir().expect("dir");
        let dest = outer.path().join("d");
        let e = run(ArchiveKind::Zip, &zip_of(&["ok", "../../slip"]), &dest).expect_err("slip");
        assert!(e.to_string().contains("\"../../slip\" escapes"), "{e}");
        assert!(!outer.path().join("slip").exists());
        let n = run(ArchiveKind::Zip, &zip_of(&["a/b.txt", "c.txt"]), &dest).expect("zip");
        assert_eq!(n, 2);
        assert_eq!(
            std::fs::read_to_string(dest.join("a/b.txt")).expect("read"),
            "data"
        );
    }

    #[test]
    fn limits_on_size_and_count() {
        let dir = tempfile::tempdir().expect("dir");
        let big = vec![0u8; (LIMITS.max_bytes + 1) as usize];
        let tar = tar_with(&[("big", tar::EntryType::Regular, &big, None)]);
        let e = run(ArchiveKind::Tar, &tar, dir.path()).expect_err("too big");
        assert!(e.to_string().contains("decompression_size_limit"), "{e}");
        let names: Vec<String> = (0..=LIMITS.max_files).map(|i| format!("f{i}")).collect();
        let entries: Vec<_> = names
            .iter()
            .map(|n| (n.as_str(), tar::EntryType::Regular, &b""[..], None))
            .collect();
        let e = run(ArchiveKind::Tar, &tar_with(&entries), dir.path()).expect_err("too many");
        assert!(
            e.to_string().contains("decompression_file_count_limit"),
            "{e}"
        );
    }

    #[test]
    fn formats_from_names_and_options() {
        assert_eq!(
            ArchiveKind::from_name("/x/conf.tar.gz"),
            Some(ArchiveKind::TarGz)
        );
        assert_eq!(ArchiveKind::from_name("conf.TGZ"), Some(ArchiveKind::TarGz));
        assert_eq!(ArchiveKind::from_name("conf.zip"), Some(ArchiveKind::Zip));
        assert_eq!(ArchiveKind::from_name("conf.json"), None);
        assert_eq!(ArchiveKind::from_option("false"), Ok(None));
        assert_eq!(
            ArchiveKind::from_option("tgz"),
            Ok(Some(ArchiveKind::TarGz))
        );
        assert!(ArchiveKind::from_option("rar").is_err());
    }
}
