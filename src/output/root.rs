//! The media root: the one directory every recording, snapshot and the
//! recordings index live under. Every path that comes from config or the API
//! is resolved here, and one that would leave the root — absolute, with `..`,
//! or through a symbolic link pointing outside — is refused with an error
//! that names it.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The path is absolute, has `..`, or is empty.
    #[error("`{path}`: {why}; paths are relative to the media root {root}")]
    Refused {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
        /// The media root.
        root: PathBuf,
    },
    /// A symbolic link on the way leads outside the media root.
    #[error("`{path}` leads to {target}, outside the media root {root}")]
    Escapes {
        /// The path as given.
        path: String,
        /// Where it leads.
        target: PathBuf,
        /// The media root.
        root: PathBuf,
    },
    /// A directory could not be made or inspected.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
}

/// Checks, without touching the disk, that `rel` is a path below a root:
/// not empty, not absolute, no `..`.
pub fn check_relative(rel: &str) -> Result<(), &'static str> {
    let mut parts = 0;
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(_) => parts += 1,
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` is not allowed"),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path is not allowed"),
        }
    }
    match (rel.is_empty(), parts) {
        (true, _) => Err("an empty path"),
        (false, 0) => Err("names the media root itself"),
        _ => Ok(()),
    }
}

/// The media root directory (created if missing, held by its canonical path).
#[derive(Clone, Debug)]
pub struct MediaRoot {
    root: PathBuf,
}

impl MediaRoot {
    /// Opens (and creates) the media root at `path`.
    pub fn open(path: &Path) -> Result<MediaRoot, PathError> {
        let io = |error| PathError::Io {
            path: path.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        Ok(MediaRoot {
            root: path.canonicalize().map_err(io)?,
        })
    }

    /// The root's canonical path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `rel`, a path relative to the root, checked to
    /// stay inside it. Missing directories are not made (see [`MediaRoot::create`]).
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, PathError> {
        let refused = |why| PathError::Refused {
            path: rel.to_owned(),
            why,
            root: self.root.clone(),
        };
        check_relative(rel).map_err(refused)?;
        let out = self.root.join(rel);
        self.check_links(rel, &out)?;
        Ok(out)
    }

    /// [`MediaRoot::resolve`], making the file's missing parent directories
    /// (and checking them again once made).
    pub fn create(&self, rel: &str) -> Result<PathBuf, PathError> {
        let path = self.resolve(rel)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| PathError::Io {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        self.check_links(rel, &path)?;
        Ok(path)
    }

    /// `path` relative to the root, if it is inside.
    pub fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.root).ok()
    }

    /// Refuses `path` when its deepest existing ancestor (itself included,
    /// links followed) is outside the root.
    fn check_links(&self, rel: &str, path: &Path) -> Result<(), PathError> {
        let mut at = path;
        loop {
            match at.canonicalize() {
                Ok(real) if real.starts_with(&self.root) => return Ok(()),
                Ok(real) => {
                    return Err(PathError::Escapes {
                        path: rel.to_owned(),
                        target: real,
                        root: self.root.clone(),
                    });
                }
                // A dangling link: where it points decides.
                Err(_) if at.is_symlink() => {
                    let target = std::fs::read_link(at).unwrap_or_default();
                    let target = at.parent().unwrap_or(&self.root).join(target);
                    if target.components().any(|c| c == Component::ParentDir) || !target.starts_with(&self.root) {
                        return Err(PathError::Escapes {
                            path: rel.to_owned(),
                            target,
                            root: self.root.clone(),
                        });
                    }
                    at = at.parent().unwrap_or(&self.root);
                }
                Err(_) => at = at.parent().unwrap_or(&self.root),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = MediaRoot::open(&dir.path().join("media")).unwrap();
        let p = root.resolve("recordings/cam0/a.mp4").unwrap();
        assert_eq!(p, root.path().join("recordings/cam0/a.mp4"));
        assert_eq!(root.relative(&p), Some(Path::new("recordings/cam0/a.mp4")));
        for (bad, why) in [
            ("../x.mp4", "`..`"),
            ("a/../../x.mp4", "`..`"),
            ("/etc/passwd", "absolute"),
            ("", "empty"),
            (".", "media root itself"),
        ] {
            let e = root.resolve(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(&format!("`{bad}`")), "the error names the path: {e}");
        }
    }

    #[test]
    fn links_leaving_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = MediaRoot::open(&dir.path().join("media")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("out")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", root.path().join("dangling")).unwrap();
        std::fs::create_dir(root.path().join("in")).unwrap();
        std::os::unix::fs::symlink(root.path().join("in"), root.path().join("inside")).unwrap();
        let e = root.create("out/x.mp4").unwrap_err().to_string();
        assert!(e.contains("outside the media root"), "{e}");
        assert!(root.resolve("dangling").is_err());
        assert!(!outside.join("x.mp4").exists());
        assert!(
            root.create("inside/deeper/x.mp4").is_ok(),
            "a link within the root is fine"
        );
        assert!(root.path().join("in/deeper").is_dir());
    }
}
