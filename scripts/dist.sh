#!/usr/bin/env bash
# Release artifacts from a built wfhost (`just dist`): a tar.gz for x86_64 Linux (glibc) with
# the binary, shell completions, man pages, LICENSE and README; a Debian package (the binary,
# man pages, completions, a systemd unit for `wfhost worker`); and a sha256 file for each.
#
#   scripts/dist.sh BINARY OUTDIR
#
# Why glibc only: wasmtime builds for musl, but Debian's Rust has no musl target here, and the
# static build is not tested; a musl archive waits for a CI that can build and test it.
# Why dpkg-deb rather than cargo-deb: it is on every Debian machine; the package is small and
# its layout is written out below.
set -euo pipefail

bin="$1"
out="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$("$bin" --version | awk 'NR == 1 {print $2}')"
target="x86_64-unknown-linux-gnu"
name="wfhost-$version-$target"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$out" "$work/$name/completions" "$work/$name/man"
# Without debug info (the release profile keeps it for profiling): a third of the size.
strip --strip-debug -o "$work/$name/wfhost" "$bin"
chmod 0755 "$work/$name/wfhost"
"$bin" completions bash > "$work/$name/completions/wfhost.bash"
"$bin" completions zsh > "$work/$name/completions/_wfhost"
"$bin" completions fish > "$work/$name/completions/wfhost.fish"
"$bin" man "$work/$name/man"
cp "$root/README.md" "$work/$name/"
cp "$root/LICENSE" "$work/$name/"
tar -C "$work" --owner=0 --group=0 --sort=name -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")

# The Debian package.
deb="$work/deb"
arch=amd64
mkdir -p "$deb/DEBIAN" "$deb/usr/bin" "$deb/usr/share/man/man1" \
  "$deb/usr/share/bash-completion/completions" "$deb/usr/share/zsh/vendor-completions" \
  "$deb/usr/share/fish/vendor_completions.d" "$deb/usr/lib/systemd/system" "$deb/usr/share/doc/wfhost"
install -m 0755 "$work/$name/wfhost" "$deb/usr/bin/wfhost"
for page in "$work/$name/man/"*.1; do
  gzip -9n < "$page" > "$deb/usr/share/man/man1/$(basename "$page").gz"
done
cp "$work/$name/completions/wfhost.bash" "$deb/usr/share/bash-completion/completions/wfhost"
cp "$work/$name/completions/_wfhost" "$deb/usr/share/zsh/vendor-completions/_wfhost"
cp "$work/$name/completions/wfhost.fish" "$deb/usr/share/fish/vendor_completions.d/wfhost.fish"
cp "$root/README.md" "$deb/usr/share/doc/wfhost/"
cp "$root/LICENSE" "$deb/usr/share/doc/wfhost/copyright"
cat > "$deb/usr/lib/systemd/system/wfhost-worker.service" <<'UNIT'
# A wfhost NATS worker (docs/distributed.md). Configure it in
# /etc/default/wfhost-worker: WFHOST_WORKER_ARGS="--nats nats://HOST:4222 --backend messages"
# and the backend's key (ANTHROPIC_API_KEY=...). Then: systemctl enable --now wfhost-worker
[Unit]
Description=wfhost worker: answers agent calls from a NATS JetStream work queue
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=-/etc/default/wfhost-worker
ExecStart=/usr/bin/wfhost worker $WFHOST_WORKER_ARGS
DynamicUser=yes
StateDirectory=wfhost-worker
WorkingDirectory=/var/lib/wfhost-worker
Restart=on-failure
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT
size="$(du -sk "$deb/usr" | cut -f1)"
cat > "$deb/DEBIAN/control" <<CONTROL
Package: wfhost
Version: $version
Architecture: $arch
Maintainer: wfhost developers <wfhost@localhost>
Installed-Size: $size
Depends: libc6
Suggests: git, ripgrep, nats-server
Section: devel
Priority: optional
Homepage: https://github.com/wfhost/wfhost
Description: sandboxed host for model-written workflow scripts
 wfhost compiles a JavaScript workflow script (Claude Code's dynamic workflow
 format) to WebAssembly and runs it in Wasmtime with no filesystem, network,
 environment or clock, fanning its agents out to a bounded pool or to NATS
 workers, journaling every answer so a run resumes without asking again.
CONTROL
dpkg-deb --root-owner-group --build "$deb" "$out/wfhost_${version}_${arch}.deb" >/dev/null
(cd "$out" && sha256sum "wfhost_${version}_${arch}.deb" > "wfhost_${version}_${arch}.deb.sha256")
ls -1 "$out"
