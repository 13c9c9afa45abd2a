//! Builds the eBPF object (crate `audit-ebpf`) with the pinned nightly and
//! bpf-linker, so a plain `cargo build` of this crate embeds fresh probes.
//! Run `cargo xtask bootstrap` once on a new machine to install both.

const DEFAULT_BPF_TOOLCHAIN: &str = "nightly-2026-05-19";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=SANDBOX_AUDIT_BPF_TOOLCHAIN");
    let toolchain = std::env::var("SANDBOX_AUDIT_BPF_TOOLCHAIN")
        .unwrap_or_else(|_| DEFAULT_BPF_TOOLCHAIN.to_string());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../audit-ebpf");
    let common = concat!(env!("CARGO_MANIFEST_DIR"), "/../../audit-common");
    println!("cargo:rerun-if-changed={common}");
    // aya-build turns every line the nested cargo prints on stderr into a
    // `cargo:warning`, so "Compiling core …" would show as dozens of
    // warnings. Quiet status output; compiler diagnostics (real warnings and
    // errors) still come through as JSON messages.
    // SAFETY: a build script is single-threaded here.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "audit-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}
