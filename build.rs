// Embeds the commit and build date into `tradeguard.version()`.
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TG_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=TG_BUILD_DATE={date}");
    // HEAD names the branch; a commit changes the branch's ref file (or packed-refs), not
    // HEAD: watch those files themselves (a directory's time does not change when a file in it
    // is rewritten, and the stamp went stale). Only files that exist: a missing one would make
    // the build script run on every build.
    println!("cargo:rerun-if-changed=.git/HEAD");
    let mut watched = vec![".git/packed-refs".to_string()];
    if let Some(r) = std::fs::read_to_string(".git/HEAD").ok().and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string())) {
        watched.push(format!(".git/{r}"));
    }
    for path in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}
