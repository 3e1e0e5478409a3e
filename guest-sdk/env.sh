# Build environment for the wfhost guest (wasm32-wasip1) with Debian's toolchain.
# Source it; see guest-sdk/README.md for why each line is needed.
#   apt-get install rustc-web rust-web-src wasi-libc clang lld libclang-rt-dev-wasm32 binaryen
export RUSTC=/usr/bin/rustc                  # Debian rustc-web (std sources in /usr/lib/rustlib/src)
export RUSTC_BOOTSTRAP=1                     # lets a stable rustc accept -Zbuild-std
export CARGO_TARGET_WASM32_WASIP1_LINKER=wasm-ld
# 4 MiB shadow stack (Rust's default is 1 MiB, ~3 400 JavaScript frames): QuickJS on WASI has no
# recursion check, so this is how deep a script may recurse before the guest traps.
export RUSTFLAGS="-C link-self-contained=no -L native=/usr/lib/wasm32-wasi -C link-arg=-zstack-size=4194304 --remap-path-prefix=$HOME/.cargo/registry/src=/cargo-src"
export RQUICKJS_SYS_NO_WASI_SDK=1            # else rquickjs-sys's build.rs downloads wasi-sdk
export CC_wasm32_wasip1=clang
export AR_wasm32_wasip1=llvm-ar
export CFLAGS_wasm32_wasip1="--target=wasm32-wasi"   # clang 14 does not know "wasip1"
export BINDGEN_EXTRA_CLANG_ARGS_wasm32_wasip1="--target=wasm32-wasi"
export LIBCLANG_PATH=/usr/lib/llvm-14/lib
export SOURCE_DATE_EPOCH=0
