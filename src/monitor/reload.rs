//! Reloading the sign model while the pipeline runs: a thread that watches
//! the model file and its sidecar (size and modification time, polled) and,
//! when they changed and then held still for one poll, or when asked (a key),
//! loads the new model and hands it to the classifier stage. A model that does
//! not load, or reads another keypoint layout, is reported and the running
//! one stays.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::classify::{Sidecar, SignModel};
use crate::landmarks::Layout;
use crate::pipeline::{Controls, StopFlag};

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(250);

/// What happened to a reload.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    /// The new model runs from the next frame on.
    Loaded {
        /// The model file.
        path: PathBuf,
        /// Its class labels.
        labels: Vec<String>,
    },
    /// The new model was refused; the old one keeps running.
    Failed {
        /// The model file.
        path: PathBuf,
        /// Why, e.g. "reads the 1662 layout but the pipeline makes 258".
        error: String,
    },
}

/// Size and modification time of the model and its sidecar (None: missing).
type Stamp = [Option<(u64, SystemTime)>; 2];

/// The watching thread; stopped and joined when dropped.
pub struct ModelWatcher {
    requested: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<ModelEvent>>>,
    stop: StopFlag,
    thread: Option<JoinHandle<()>>,
}

impl ModelWatcher {
    /// Watches `path`; a model that loads and reads `layout` replaces the
    /// running one through `controls`.
    pub fn start(
        path: &Path,
        layout: Layout,
        controls: Arc<Controls>,
    ) -> std::io::Result<ModelWatcher> {
        let requested = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = StopFlag::new();
        let watch = Watch {
            path: path.to_path_buf(),
            layout,
            controls,
            requested: Arc::clone(&requested),
            events: Arc::clone(&events),
            stop: stop.clone(),
        };
        // The files as they are now, before the thread starts: a change made
        // while it is starting is still a change.
        let loaded = watch.stamp();
        let thread = std::thread::Builder::new()
            .name("model-watch".into())
            .spawn(move || watch.run(loaded))?;
        Ok(ModelWatcher {
            requested,
            events,
            stop,
            thread: Some(thread),
        })
    }

    /// Reloads at the next poll whether or not the files changed.
    pub fn request_reload(&self) {
        self.requested.store(true, Ordering::Release);
    }

    /// Reloads that finished since the last call, oldest first.
    pub fn drain_events(&self) -> Vec<ModelEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for ModelWatcher {
    fn drop(&mut self) {
        self.stop.request();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Watch {
    path: PathBuf,
    layout: Layout,
    controls: Arc<Controls>,
    requested: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<ModelEvent>>>,
    stop: StopFlag,
}

impl Watch {
    fn run(self, mut loaded: Stamp) {
        // A change is loaded once the files held still for a poll, so a
        // model still being written is not read half-way.
        let mut changing: Option<Stamp> = None;
        while !self.stop.is_requested() {
            std::thread::sleep(POLL);
            let now = self.stamp();
            let asked = self.requested.swap(false, Ordering::AcqRel);
            let settled = now != loaded && changing == Some(now);
            if asked || settled {
                self.reload();
                loaded = now;
                changing = None;
            } else if now != loaded {
                changing = Some(now);
            }
        }
    }

    fn stamp(&self) -> Stamp {
        let of = |p: &Path| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        };
        [of(&self.path), of(&Sidecar::path_for(&self.path))]
    }

    fn reload(&self) {
        let event = match self.load() {
            Ok(model) => {
                let labels = model.labels().to_vec();
                tracing::info!(path = %self.path.display(), ?labels, "sign model reloaded");
                self.controls.replace_classifier(Box::new(model));
                ModelEvent::Loaded {
                    path: self.path.clone(),
                    labels,
                }
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "sign model not reloaded");
                ModelEvent::Failed {
                    path: self.path.clone(),
                    error,
                }
            }
        };
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    fn load(&self) -> Result<SignModel, String> {
        let model = SignModel::load(&self.path).map_err(|e| e.to_string())?;
        if model.layout() != self.layout {
            return Err(format!(
                "it reads the {} layout but the pipeline makes {}",
                model.layout(),
                self.layout
            ));
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for_event(watcher: &ModelWatcher) -> ModelEvent {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(event) = watcher.drain_events().into_iter().next() {
                return event;
            }
            assert!(std::time::Instant::now() < deadline, "no reload seen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn controls() -> Arc<Controls> {
        crate::pipeline::test_support::controls()
    }

    #[test]
    fn a_replaced_model_is_loaded_and_a_bad_one_reported() {
        let shipped = Path::new(crate::classify::DEFAULT_SIGN_MODEL);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signs.onnx");
        std::fs::copy(shipped, &path).unwrap();
        std::fs::copy(Sidecar::path_for(shipped), Sidecar::path_for(&path)).unwrap();
        let watcher = ModelWatcher::start(&path, Layout::PoseHands, controls()).unwrap();

        // Not an ONNX model: refused, named.
        std::fs::write(&path, b"not a model").unwrap();
        match wait_for_event(&watcher) {
            ModelEvent::Failed { error, .. } => assert!(!error.is_empty()),
            other => panic!("expected a failure, got {other:?}"),
        }
        // The real model again: loaded.
        std::fs::copy(shipped, &path).unwrap();
        match wait_for_event(&watcher) {
            ModelEvent::Loaded { labels, .. } => assert_eq!(labels.len(), 7),
            other => panic!("expected a reload, got {other:?}"),
        }
        // Asked for: loaded again though nothing changed.
        watcher.request_reload();
        assert!(matches!(
            wait_for_event(&watcher),
            ModelEvent::Loaded { .. }
        ));
    }

    #[test]
    fn a_model_of_another_layout_is_refused() {
        let shipped = Path::new(crate::classify::DEFAULT_SIGN_MODEL);
        let watcher = ModelWatcher::start(shipped, Layout::PoseFaceHands, controls()).unwrap();
        watcher.request_reload();
        match wait_for_event(&watcher) {
            ModelEvent::Failed { error, .. } => {
                assert!(error.contains("1662") && error.contains("258"), "{error}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
