//! The memory tool a test machine downloads and runs (the stand-in for
//! AVML): a shell script that writes a known pattern of a given size to
//! the path it is given, served over HTTP on 127.0.0.1 from a directory of
//! its own, with its sha256 for the playbook to pin.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

/// A child process killed on drop.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the tool writes: `IRHOST-MEMORY-IMAGE\n` repeated to `size` bytes.
pub fn image_bytes(size: usize) -> Vec<u8> {
    b"IRHOST-MEMORY-IMAGE\n"
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect()
}

pub struct MemoryTool {
    _server: Running,
    _dir: tempfile::TempDir,
    port: u16,
    /// The sha256 of the tool's bytes (what the playbook pins).
    pub sha256: String,
    /// The image it writes.
    pub image_size: usize,
}

impl MemoryTool {
    /// Serve a tool that writes an image of `image_size` bytes.
    pub fn serve(image_size: usize) -> MemoryTool {
        let dir = tempfile::tempdir().unwrap();
        let script =
            format!("#!/bin/sh\nyes IRHOST-MEMORY-IMAGE | head -c {image_size} > \"$1\"\n");
        std::fs::write(dir.path().join("avml"), &script).unwrap();
        let sha256 = hex::encode(sha2::Sha256::digest(script.as_bytes()));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Running(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the tool server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        MemoryTool {
            _server: server,
            _dir: dir,
            port,
            sha256,
            image_size,
        }
    }

    /// The tool's download URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/avml", self.port)
    }

    /// The sha256 of the image the tool writes.
    pub fn image_sha256(&self) -> String {
        hex::encode(sha2::Sha256::digest(image_bytes(self.image_size)))
    }
}

/// The `memory-image` artifact a run recorded.
pub struct MemoryArtifact {
    pub location: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub metadata: Vec<(String, String)>,
}

impl MemoryArtifact {
    /// The first in `records`; panics when there is none.
    pub fn of(records: &[irhost::journal::JournalRecord]) -> MemoryArtifact {
        records
            .iter()
            .find_map(|r| match &r.event {
                irhost::events::RunEvent::ArtifactRecorded {
                    kind,
                    location,
                    sha256,
                    size,
                    metadata,
                    ..
                } if kind == "memory-image" => Some(MemoryArtifact {
                    location: location.clone(),
                    sha256: sha256.clone(),
                    size: *size,
                    metadata: metadata.clone(),
                }),
                _ => None,
            })
            .expect("a memory-image artifact")
    }

    pub fn meta(&self, key: &str) -> Option<String> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}
