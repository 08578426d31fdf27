//! The on-disk cache of precompiled components, authenticated before any of
//! it is loaded as native code. An entry is keyed by the sha256 of the
//! `.wasm` and the engine's compatibility hash (so a new wasmtime or
//! different settings never load stale code), and written atomically (temp
//! file + rename) so concurrent runs never see half a file.
//!
//! Loading precompiled code is wasmtime's `unsafe` deserialize: whoever can
//! write the cache directory could otherwise run native code in the host.
//! So each entry is one file, `IRHOSTC1` + a 32-byte tag + the serialized
//! component, the tag an HMAC-SHA256 of (wasm sha256, engine key, payload)
//! under a 32-byte random key kept outside the cache ([`CacheKey`]). An
//! entry whose tag does not verify (tampered, truncated, written for another
//! component, or under another key) is never deserialized: the component is
//! compiled again and the entry rewritten ([`CacheOutcome::Replaced`]).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::component::Component;
use wasmtime::Engine;

/// The first bytes of every cache entry (format version 1).
const MAGIC: &[u8; 8] = b"IRHOSTC1";
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + TAG_LEN;

pub struct ComponentCache {
    /// The cache directory and the key that authenticates its entries;
    /// `None` compiles every time.
    store: Option<(PathBuf, CacheKey)>,
    engine_key: String,
    /// Entries handed to wasmtime's deserialize (each one authenticated).
    deserialized: AtomicU64,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// An authenticated cache entry was loaded.
    Hit,
    /// There was no entry: compiled, and stored.
    Compiled,
    /// An entry was there but failed authentication (or was unusable): it
    /// was not loaded; compiled, and the entry rewritten.
    Replaced,
    Uncached,
}

/// The secret that authenticates cache entries: 32 random bytes, kept as 64
/// hex digits in a file of mode 0600 outside the cache directory
/// ([`CacheKey::default_path`]), created on first use.
#[derive(Clone)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// `$IRHOST_CACHE_KEY`, else `$XDG_CONFIG_HOME/irhost/cache.key`, else
    /// `~/.config/irhost/cache.key`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("IRHOST_CACHE_KEY") {
            return Some(PathBuf::from(path));
        }
        if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
            return Some(PathBuf::from(dir).join("irhost").join("cache.key"));
        }
        std::env::var_os("HOME").map(|h| {
            PathBuf::from(h)
                .join(".config")
                .join("irhost")
                .join("cache.key")
        })
    }

    /// Read the key at `path`, or create it (mode 0600; the first of
    /// concurrent creators wins, the others read its key). A key file that
    /// others may read or write is refused.
    pub fn load_or_create(path: &Path) -> anyhow::Result<CacheKey> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dir(parent)?;
        let mut key = [0u8; 32];
        {
            use rand::TryRngCore;
            rand::rngs::OsRng
                .try_fill_bytes(&mut key)
                .map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
        }
        // tempfile creates its files with mode 0600.
        let mut tmp = tempfile::NamedTempFile::new_in(parent)
            .with_context(|| format!("creating the cache key in {}", parent.display()))?;
        writeln!(tmp, "{}", hex::encode(key))?;
        tmp.as_file().sync_all()?;
        match tmp.persist_noclobber(path) {
            Ok(_) => Ok(CacheKey(key)),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Self::parse(path, &text)
            }
            Err(e) => Err(anyhow::anyhow!("{}: {}", path.display(), e.error)),
        }
    }

    fn parse(path: &Path, text: &str) -> anyhow::Result<CacheKey> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{}: mode {:o}; the component cache key must be readable by its owner only (chmod 600)",
                    path.display(),
                    mode & 0o777
                );
            }
        }
        hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(CacheKey)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: not a component cache key (64 hex digits); remove it to make a new one",
                    path.display()
                )
            })
    }

    fn mac(&self, wasm_sha256: &str, engine_key: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        // Length-prefixed, so no two (sha, engine) pairs give the same input.
        for part in [
            MAGIC.as_slice(),
            wasm_sha256.as_bytes(),
            engine_key.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
}

impl ComponentCache {
    /// A cache in `dir` with the key at [`CacheKey::default_path`]; `None`
    /// compiles every time.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        Self::with_key_file(engine, dir, CacheKey::default_path())
    }

    /// A cache in `dir` authenticated by the key at `key_file` (created when
    /// missing). Without a usable key the cache is off: every load compiles.
    pub fn with_key_file(engine: &Engine, dir: Option<PathBuf>, key_file: Option<PathBuf>) -> Self {
        let store = dir.and_then(|dir| {
            let Some(key_file) = key_file else {
                tracing::warn!("no place for the component cache key (set IRHOST_CACHE_KEY or HOME): the cache is off");
                return None;
            };
            match CacheKey::load_or_create(&key_file) {
                Ok(key) => Some((dir, key)),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the component cache is off");
                    None
                }
            }
        });
        Self::with_key(engine, store)
    }

    /// A cache in the given directory under the given key; `None` compiles
    /// every time.
    pub fn with_key(engine: &Engine, store: Option<(PathBuf, CacheKey)>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            store,
            engine_key: format!("{:016x}", hasher.finish()),
            deserialized: AtomicU64::new(0),
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

    /// How many entries this cache has handed to wasmtime's deserialize:
    /// only ever ones whose tag verified.
    pub fn deserialized(&self) -> u64 {
        self.deserialized.load(Ordering::Relaxed)
    }

    /// The file holding the entry of the component whose `.wasm` has this
    /// sha256 (whether or not it exists); `None` when the cache is off.
    pub fn entry_path(&self, wasm_sha256: &str) -> Option<PathBuf> {
        let (dir, _) = self.store.as_ref()?;
        Some(
            dir.join("components")
                .join(format!("{wasm_sha256}-{}.cwasm", self.engine_key)),
        )
    }

    /// Load the component for `wasm` (whose sha256 is given), from the cache
    /// when its entry authenticates, compiling and storing it otherwise.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let (Some((_, key)), Some(path)) = (&self.store, self.entry_path(wasm_sha256)) else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
        };
        let mut outcome = CacheOutcome::Compiled;
        match std::fs::read(&path) {
            Ok(entry) => match self.authenticated_payload(key, wasm_sha256, &entry) {
                Ok(payload) => {
                    // SAFETY: `payload` is exactly the bytes whose tag was
                    // just verified under our key: what `Component::serialize`
                    // of an engine with the same compatibility hash wrote for
                    // this very `.wasm`. It was read once, into memory, so
                    // the file changing now cannot change what is loaded.
                    self.deserialized.fetch_add(1, Ordering::Relaxed);
                    match unsafe { Component::deserialize(engine, payload) } {
                        Ok(component) => return Ok((component, CacheOutcome::Hit)),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry")
                        }
                    }
                    outcome = CacheOutcome::Replaced;
                }
                Err(why) => {
                    tracing::warn!(path = %path.display(), why, "cache entry failed authentication: not loaded, recompiling");
                    outcome = CacheOutcome::Replaced;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read cache entry"),
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(key, wasm_sha256, &path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the component cache");
        }
        Ok((component, outcome))
    }

    /// The payload of `entry` if its header is ours and its tag verifies.
    fn authenticated_payload<'a>(
        &self,
        key: &CacheKey,
        wasm_sha256: &str,
        entry: &'a [u8],
    ) -> Result<&'a [u8], &'static str> {
        if entry.len() < HEADER_LEN || &entry[..MAGIC.len()] != MAGIC {
            return Err("not an irhost cache entry (no header)");
        }
        let (tag, payload) = entry[MAGIC.len()..].split_at(TAG_LEN);
        let mut mac = key.mac(wasm_sha256, &self.engine_key);
        mac.update(payload);
        // Constant-time comparison.
        mac.verify_slice(tag).map_err(|_| {
            "the tag does not match (tampered, truncated, another component's, or another key's)"
        })?;
        Ok(payload)
    }

    fn store(
        &self,
        key: &CacheKey,
        wasm_sha256: &str,
        path: &Path,
        component: &Component,
    ) -> anyhow::Result<()> {
        let parent = path.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(parent)?;
        let payload = component.serialize()?;
        let mut mac = key.mac(wasm_sha256, &self.engine_key);
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&tag)?;
        tmp.write_all(&payload)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wasm(name: &str) -> (Vec<u8>, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/dist")
            .join(format!("{name}.wasm"));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-plugins)", path.display()));
        let sha = crate::digest::sha256_hex(&bytes);
        (bytes, sha)
    }

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// A cache in `dir` whose key lives in `keys` (outside the cache).
    fn cache(engine: &Engine, dir: &Path, key_file: &Path) -> ComponentCache {
        let cache = ComponentCache::with_key_file(
            engine,
            Some(dir.to_path_buf()),
            Some(key_file.to_path_buf()),
        );
        assert!(cache.store.is_some(), "the cache is on");
        cache
    }

    fn exports(engine: &Engine, component: &Component) -> Vec<String> {
        component
            .component_type()
            .exports(engine)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    #[test]
    fn the_key_is_created_0600_outside_the_cache_and_reused() {
        let keys = tempfile::tempdir().unwrap();
        let file = keys.path().join("irhost").join("cache.key");
        let key = CacheKey::load_or_create(&file).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(file.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        assert_eq!(CacheKey::load_or_create(&file).unwrap().0, key.0, "reused");
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim().len(), 64);
        // A key others can read is refused, and the cache is then off.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = CacheKey::load_or_create(&file).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
            let dir = tempfile::tempdir().unwrap();
            let off = ComponentCache::with_key_file(&engine(), Some(dir.path().into()), Some(file));
            assert!(off.store.is_none());
        }
    }

    #[test]
    fn a_bad_entry_is_recompiled_and_rewritten_never_deserialized() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let key_file = keys.path().join("cache.key");
        let (test, test_sha) = wasm("test-provider");
        let (step, step_sha) = wasm("example-step");
        let want_test = exports(&engine, &Component::new(&engine, &test).unwrap());
        let want_step = exports(&engine, &Component::new(&engine, &step).unwrap());

        let c = cache(&engine, dir.path(), &key_file);
        let entry = c.entry_path(&test_sha).unwrap();
        let other = c.entry_path(&step_sha).unwrap();
        assert!(!entry.starts_with(keys.path()) && !key_file.starts_with(dir.path()));
        assert_eq!(
            c.load(&engine, &test, &test_sha).unwrap().1,
            CacheOutcome::Compiled
        );
        assert_eq!(
            c.load(&engine, &step, &step_sha).unwrap().1,
            CacheOutcome::Compiled
        );
        let (component, outcome) = c.load(&engine, &test, &test_sha).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert_eq!(exports(&engine, &component), want_test);
        assert_eq!(c.deserialized(), 1);
        let good = std::fs::read(&entry).unwrap();
        assert_eq!(&good[..8], MAGIC);

        // Each bad entry: loaded as Replaced with the right component, no
        // deserialize call, and the entry rewritten (the next load hits).
        let check =
            |what: &str, bad: Vec<u8>, at: &Path, wasm: &[u8], sha: &str, want: &[String]| {
                std::fs::write(at, &bad).unwrap();
                let c = cache(&engine, dir.path(), &key_file);
                let (component, outcome) = c.load(&engine, wasm, sha).unwrap();
                assert_eq!(outcome, CacheOutcome::Replaced, "{what}");
                assert_eq!(exports(&engine, &component), want, "{what}");
                assert_eq!(
                    c.deserialized(),
                    0,
                    "{what}: the bad bytes were deserialized"
                );
                let rewritten = std::fs::read(at).unwrap();
                assert_ne!(rewritten, bad, "{what}: the entry is rewritten");
                assert_eq!(
                    c.load(&engine, wasm, sha).unwrap().1,
                    CacheOutcome::Hit,
                    "{what}"
                );
                assert_eq!(c.deserialized(), 1, "{what}");
            };
        // A flipped byte in the native code, and one in the tag.
        let mut flipped = good.clone();
        let mid = HEADER_LEN + (good.len() - HEADER_LEN) / 2;
        flipped[mid] ^= 0x40;
        check(
            "payload byte",
            flipped,
            &entry,
            &test,
            &test_sha,
            &want_test,
        );
        let mut tag = good.clone();
        tag[MAGIC.len() + 3] ^= 1;
        check("tag byte", tag, &entry, &test, &test_sha, &want_test);
        // Truncated, and a bare wasmtime serialization without the header.
        check(
            "truncated",
            good[..good.len() - 100].to_vec(),
            &entry,
            &test,
            &test_sha,
            &want_test,
        );
        check(
            "too short",
            good[..20].to_vec(),
            &entry,
            &test,
            &test_sha,
            &want_test,
        );
        let bare = Component::new(&engine, &test).unwrap().serialize().unwrap();
        check("headerless", bare, &entry, &test, &test_sha, &want_test);
        // Another component's valid entry copied over this one's: the tag
        // binds the wasm's sha256, so it does not verify here.
        let step_entry = std::fs::read(&other).unwrap();
        check("swapped", step_entry, &entry, &test, &test_sha, &want_test);
        // An entry made under another key.
        let foreign_keys = tempfile::tempdir().unwrap();
        let foreign_dir = tempfile::tempdir().unwrap();
        let f = cache(&engine, foreign_dir.path(), &foreign_keys.path().join("k"));
        f.load(&engine, &step, &step_sha).unwrap();
        let foreign = std::fs::read(f.entry_path(&step_sha).unwrap()).unwrap();
        check("other key", foreign, &other, &step, &step_sha, &want_step);
    }
}
