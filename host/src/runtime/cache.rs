//! The on-disk cache of precompiled components. An entry is keyed by the
//! sha256 of the `.wasm` and the engine's compatibility hash (so a new
//! wasmtime or different settings never load stale code), and written
//! atomically (temp file + rename) so concurrent runs never see half a file.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
    Uncached,
}

impl ComponentCache {
    /// A cache in `dir`; `None` compiles every time.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The default location: `$IRHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/irhost`,
    /// else `~/.cache/irhost`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("IRHOST_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("irhost"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("irhost"))
    }

    fn entry_path(&self, dir: &Path, wasm_sha256: &str) -> PathBuf {
        dir.join("components")
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine_key))
    }

    /// Load the component for `wasm` (whose sha256 is given), from the cache
    /// when possible, compiling and storing it otherwise.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
        };
        let path = self.entry_path(dir, wasm_sha256);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the name),
            // and only ever replaced atomically.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the component cache");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let parent = path.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(parent)?;
        let bytes = component.serialize()?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}
