//! Build script. Optional C/C++ shims (argus, TensorRT) are compiled here only
//! when their cargo feature is on; the default build compiles none. Always:
//! stamps the git commit into `eyrie --version`, and tells whether OpenH264's
//! x86 assembly could be built (it needs `nasm`; without it OpenH264 builds
//! silently in plain C, about 2.7× slower): a build warning names the package,
//! and `EYRIE_OPENH264_ASM` lets the binary say so when it opens the encoder.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=EYRIE_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=build.rs");

    let asm = openh264_assembly();
    println!("cargo:rustc-env=EYRIE_OPENH264_ASM={}", asm.is_ok() as u8);
    if let Err(why) = asm {
        println!(
            "cargo:warning=OpenH264 is built without its assembly ({why}): H.264 encoding will be about 2.7x slower. \
             Install nasm (Debian/Ubuntu: apt install nasm) and rebuild."
        );
    }
    println!("cargo:rerun-if-env-changed=NASM");
    println!("cargo:rerun-if-env-changed=OPENH264_NO_ASM");
}

/// Whether openh264-sys2 will assemble its x86 kernels: as its build does,
/// it needs `nasm` (or `$NASM`) and no `OPENH264_NO_ASM`. Other targets
/// need no nasm.
fn openh264_assembly() -> Result<(), String> {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !matches!(arch.as_str(), "x86" | "x86_64") {
        return Ok(());
    }
    if std::env::var_os("OPENH264_NO_ASM").is_some() {
        return Err("OPENH264_NO_ASM is set".into());
    }
    let nasm = std::env::var("NASM").unwrap_or_else(|_| "nasm".into());
    match Command::new(&nasm).arg("-v").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!("`{nasm}` was not found")),
    }
}
