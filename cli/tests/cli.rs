//! The `iterinv` binary as a user runs it.

use std::process::Command;

fn iterinv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iterinv"))
}

#[test]
fn info_prints_the_device() {
    let out = iterinv().arg("info").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "backend:",
        "adapter:",
        "driver:",
        "max_storage_buffer_binding_size",
        "shader-f16",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
}

#[test]
fn an_unknown_adapter_name_is_a_clear_error() {
    let out = iterinv()
        .arg("info")
        .env("WGPU_ADAPTER_NAME", "no-such-gpu-xyz")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WGPU_ADAPTER_NAME") && stderr.contains("no-such-gpu-xyz"),
        "{stderr}"
    );
}

#[test]
fn help_documents_device_selection() {
    let out = iterinv().arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("info") && stdout.contains("WGPU_BACKEND"),
        "{stdout}"
    );
}
