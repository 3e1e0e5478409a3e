//! Compiling: the guest (Cranelift, once, cached as a precompiled artifact), scripts (QuickJS
//! bytecode through the guest's `compile-src`, cached), and standalone modules
//! (`wfhost compile`: a Javy dynamic-linking module written with `wasm-encoder`).

use crate::script::Meta;
use anyhow::{Context as _, Result, bail};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasm_encoder::{
    CodeSection, CustomSection, DataCountSection, DataSection, EntityType, ExportKind,
    ExportSection, Function, FunctionSection, ImportSection, Instruction, MemoryType,
    Module as Encoder, TypeSection, ValType,
};
use wasmtime::{Engine, Module};

/// The pre-initialised guest (guest-sdk/dist/wfhost-guest.wasm), embedded by build.rs after it
/// checked the file against its recorded sha256.
pub(crate) static GUEST: &[u8] = include_bytes!(env!("WFHOST_GUEST_PATH"));
/// sha256 of `GUEST`, hex.
pub(crate) const GUEST_SHA256: &str = env!("WFHOST_GUEST_SHA256");

/// The namespace a standalone module imports the guest under (the guest's `import_namespace`).
pub(crate) const PLUGIN_NAMESPACE: &str = "wfhost_plugin_v1";
/// What a standalone module may import from the guest.
pub(crate) const PLUGIN_IMPORTS: &[&str] = &["cabi_realloc", "invoke", "memory"];
/// Their types (`memory` for the memory).
pub(crate) const PLUGIN_SIGNATURES: &[(&str, &str)] = &[
    ("cabi_realloc", "(i32, i32, i32, i32) -> i32"),
    ("invoke", "(i32, i32, i32, i32, i32) -> ()"),
    ("memory", "memory"),
];

const META_SECTION: &str = "wfhost:meta";
const GUEST_SECTION: &str = "wfhost:guest-sha256";

/// Facts about the guest in use.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct GuestArtifact {
    pub sha256: String,
    pub size: usize,
    /// Where the precompiled artifact came from: `cache`, `compiled` or `compiled (no cache)`.
    pub source: &'static str,
}

/// The versioned compile cache: `$WFHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/wfhost`, then `v1/`.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    pub(crate) fn new(no_cache: bool) -> Cache {
        if no_cache {
            return Cache { dir: None };
        }
        Cache {
            dir: crate::paths::cache_dir().map(|b| b.join("v1")),
        }
    }

    pub(crate) fn dir(&self) -> Option<&PathBuf> {
        self.dir.as_ref()
    }

    fn path(&self, kind: &str, key: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(kind).join(key))
    }

    fn read(&self, kind: &str, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(kind, key)?).ok()
    }

    fn existing(&self, kind: &str, key: &str) -> Option<PathBuf> {
        self.path(kind, key).filter(|p| p.is_file())
    }

    /// Best effort: a cache that cannot be written only costs time.
    fn write(&self, kind: &str, key: &str, bytes: &[u8]) {
        let Some(path) = self.path(kind, key) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        #[cfg(unix)]
        if let Some(root) = &self.dir {
            use std::os::unix::fs::PermissionsExt;
            // Precompiled code is loaded without re-verification: keep the cache private.
            let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700));
        }
        let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

/// The wasmtime this binary links (from Cargo.lock, by build.rs).
pub(crate) const WASMTIME_VERSION: &str = env!("WFHOST_WASMTIME_VERSION");

/// Loads the guest: deserialises the cached precompiled artifact, or compiles it with
/// Cranelift (~1 s) and caches it. The key is blake3(guest sha256 ‖ wasmtime version ‖ engine
/// configuration (its compatibility hash: every setting that changes codegen) ‖ wfhost's
/// version).
pub(crate) fn load_guest(engine: &Engine, cache: &Cache) -> Result<(Module, GuestArtifact)> {
    if GUEST.is_empty() {
        bail!(
            crate::ExitError::new(
                crate::exit::INTERNAL,
                "this wfhost was built without its guest (guest-sdk/dist/wfhost-guest.wasm)"
            )
            .hint("run `just guest`, then rebuild")
        );
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let mut key = blake3::Hasher::new();
    // The guest by its sha256, which build.rs checked against the embedded bytes: hashing the
    // 2.75 MB guest itself on every start cost a warm run ~0.3 ms.
    key.update(GUEST_SHA256.as_bytes())
        .update(WASMTIME_VERSION.as_bytes())
        .update(env!("CARGO_PKG_VERSION").as_bytes())
        .update(&h.finish().to_le_bytes());
    let key = format!("{}.cwasm", key.finalize().to_hex());
    let artifact = |source| GuestArtifact {
        sha256: GUEST_SHA256.to_string(),
        size: GUEST.len(),
        source,
    };

    if let Some(path) = cache.existing("guest", &key) {
        // Memory-mapped, not read and copied into a new mapping: the warm start pays for the
        // pages it touches, not for 5.8 MB.
        // SAFETY: the artifact was written by this same code into the user's private cache
        // directory (0700), and wasmtime checks its header against this engine's configuration.
        if let Ok(m) = unsafe { Module::deserialize_file(engine, &path) } {
            tracing::debug!(path = %path.display(), "guest from the compile cache");
            return Ok((m, artifact("cache")));
        }
    }
    tracing::debug!("compiling the guest (no cached artifact)");
    let module = Module::new(engine, GUEST)
        .map_err(anyhow::Error::from)
        .context("compiling the guest")?;
    if cache.dir().is_some() {
        let bytes = module.serialize()?;
        cache.write("guest", &key, &bytes);
        return Ok((module, artifact("compiled")));
    }
    Ok((module, artifact("compiled (no cache)")))
}

/// The bytecode cache key of a wrapped script module.
pub(crate) fn bytecode_key(module_source: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(module_source.as_bytes())
        .update(GUEST_SHA256.as_bytes());
    format!("{}.qjsbc", h.finalize().to_hex())
}

pub(crate) fn cached_bytecode(cache: &Cache, module_source: &str) -> Option<Vec<u8>> {
    cache.read("bytecode", &bytecode_key(module_source))
}

pub(crate) fn store_bytecode(cache: &Cache, module_source: &str, bytecode: &[u8]) {
    cache.write("bytecode", &bytecode_key(module_source), bytecode);
}

/// A Javy dynamic-linking module: imports `wfhost_plugin_v1::{cabi_realloc, invoke, memory}`,
/// carries the bytecode in a passive data segment, and `_start` copies it into the guest and
/// calls `invoke`. Deterministic: the same bytecode and meta always give the same bytes.
pub(crate) fn encode_module(bytecode: &[u8], meta: &Meta) -> Vec<u8> {
    let len = i32::try_from(bytecode.len())
        .expect("a script's bytecode is far below 2 GiB: the guest that made it has 256 MiB");
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32; 4], [ValType::I32]); // 0: cabi_realloc
    types.ty().function([ValType::I32; 5], []); // 1: invoke
    types.ty().function([], []); // 2: _start
    let mut imports = ImportSection::new();
    imports.import(PLUGIN_NAMESPACE, "cabi_realloc", EntityType::Function(0));
    imports.import(PLUGIN_NAMESPACE, "invoke", EntityType::Function(1));
    let memory = MemoryType {
        minimum: 0,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    };
    imports.import(PLUGIN_NAMESPACE, "memory", EntityType::Memory(memory));
    let mut functions = FunctionSection::new();
    functions.function(2);
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, 2);
    let mut start = Function::new([(1, ValType::I32)]);
    for i in [
        Instruction::I32Const(0),
        Instruction::I32Const(0),
        Instruction::I32Const(1),
        Instruction::I32Const(len),
        Instruction::Call(0),
        Instruction::LocalSet(0),
        Instruction::LocalGet(0),
        Instruction::I32Const(0),
        Instruction::I32Const(len),
        Instruction::MemoryInit {
            mem: 0,
            data_index: 0,
        },
        Instruction::DataDrop(0),
        Instruction::LocalGet(0),
        Instruction::I32Const(len),
        Instruction::I32Const(0),
        Instruction::I32Const(0),
        Instruction::I32Const(0),
        Instruction::Call(1),
        Instruction::End,
    ] {
        start.instruction(&i);
    }
    let mut code = CodeSection::new();
    code.function(&start);
    let mut data = DataSection::new();
    data.passive(bytecode.iter().copied());

    let mut module = Encoder::new();
    module
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&exports)
        .section(&DataCountSection { count: 1 })
        .section(&code)
        .section(&data);
    let meta = serde_json::to_vec(meta).expect("meta serialises");
    module.section(&CustomSection {
        name: META_SECTION.into(),
        data: meta.into(),
    });
    module.section(&CustomSection {
        name: GUEST_SECTION.into(),
        data: GUEST_SHA256.as_bytes().into(),
    });
    module.finish()
}

/// What `wfhost run OUT.wasm` needs from a standalone module's custom sections.
pub(crate) struct ModuleInfo {
    pub meta: Option<Meta>,
    pub guest_sha256: Option<String>,
}

pub(crate) fn module_info(bytes: &[u8]) -> Result<ModuleInfo> {
    let mut info = ModuleInfo {
        meta: None,
        guest_sha256: None,
    };
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::CustomSection(s) =
            payload.context("not a valid WebAssembly module")?
        {
            match s.name() {
                META_SECTION => info.meta = meta_from_json(s.data()),
                GUEST_SECTION => {
                    info.guest_sha256 = Some(String::from_utf8_lossy(s.data()).into_owned());
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

fn meta_from_json(data: &[u8]) -> Option<Meta> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    Some(Meta {
        name: s("name")?,
        description: s("description")?,
        title: s("title"),
        when_to_use: s("whenToUse"),
        phases: serde_json::from_value(v.get("phases").cloned().unwrap_or_default())
            .unwrap_or_default(),
        warnings: vec![],
    })
}
