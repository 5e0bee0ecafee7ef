//! The code's output: split into lines, traced (target `science`) and appended to the run's log file.
//!
//! A failing log file never fails the run: the first write error is traced and the file is dropped,
//! while `tracing` keeps receiving the lines.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::RuntimeError;

/// Lines on their way to the sink.
pub(crate) type LineSender = mpsc::Sender<(Stream, String)>;

/// Longest line kept whole; longer ones are cut into pieces of this size.
const MAX_LINE: usize = 64 * 1024;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Cuts a byte stream into lines, keeping an unfinished line until more bytes or the end come.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds bytes and returns the lines they complete, without their line ends.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take());
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE {
                    lines.push(self.take());
                }
            }
        }
        lines
    }

    /// The unfinished last line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// Where the lines of one run go.
#[derive(Debug)]
pub(crate) struct LogSink {
    job: String,
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl LogSink {
    /// The path of the log file of run `name` in `work_dir`.
    pub(crate) fn path_for(work_dir: &Path, name: &str) -> PathBuf {
        work_dir.join("logs").join(format!("{name}.log"))
    }

    /// Opens (appending) `<work_dir>/logs/<name>.log`.
    pub(crate) async fn open(work_dir: &Path, name: &str) -> Result<LogSink, RuntimeError> {
        let path = Self::path_for(work_dir, name);
        let fail = |source| RuntimeError::WorkDir {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(fail)?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(fail)?;
        Ok(LogSink {
            job: name.to_string(),
            path,
            file: Some(file),
        })
    }

    /// Records one line of the code's output.
    pub(crate) async fn line(&mut self, stream: Stream, line: &str) {
        tracing::info!(target: "science", job = %self.job, stream = stream.as_str(), "{line}");
        self.append(&format!("[{}] {line}\n", stream.as_str()))
            .await;
    }

    /// Records a line of the runtime's own (start, end), in the file only.
    pub(crate) async fn note(&mut self, text: &str) {
        self.append(&format!("[swath] {text}\n")).await;
    }

    /// Moves the sink into a task that records the lines sent to it, until every sender is gone;
    /// the task gives the sink back.
    pub(crate) fn spawn_writer(mut self) -> (LineSender, JoinHandle<LogSink>) {
        let (tx, mut rx) = mpsc::channel::<(Stream, String)>(1024);
        let task = tokio::spawn(async move {
            while let Some((stream, line)) = rx.recv().await {
                self.line(stream, &line).await;
            }
            self
        });
        (tx, task)
    }

    async fn append(&mut self, text: &str) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let written = match file.write_all(text.as_bytes()).await {
            Ok(()) => file.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(job = %self.job, path = %self.path.display(), error = %e,
                "cannot write the log file; output goes to the tracing log only");
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"one\ntw"), vec!["one"]);
        assert_eq!(s.push(b"o\r\nthree"), vec!["two"]);
        assert_eq!(s.finish().as_deref(), Some("three"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn keeps_empty_lines_and_cuts_long_ones() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"\n\n"), vec!["", ""]);
        let long = vec![b'x'; MAX_LINE + 3];
        let lines = s.push(&long);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(s.finish().as_deref(), Some("xxx"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_lost() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\xffb\n"), vec!["a\u{fffd}b"]);
    }

    #[tokio::test]
    async fn appends_prefixed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = LogSink::open(dir.path(), "swath-1-1").await.unwrap();
        sink.line(Stream::Stdout, "hello").await;
        sink.line(Stream::Stderr, "oops").await;
        sink.note("exited with code 0").await;
        let mut again = LogSink::open(dir.path(), "swath-1-1").await.unwrap();
        again.line(Stream::Stdout, "second run").await;
        let text = std::fs::read_to_string(dir.path().join("logs/swath-1-1.log")).unwrap();
        assert_eq!(
            text,
            "[stdout] hello\n[stderr] oops\n[swath] exited with code 0\n[stdout] second run\n"
        );
    }
}
