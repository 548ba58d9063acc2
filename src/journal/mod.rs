//! The journal: one versioned state file per account, region and cluster, so a run that
//! was interrupted (a laptop asleep, a cancelled pipeline, a vanished runner) can be
//! resumed without acting twice. It holds each instance's state and evidence, the
//! findings the operator overrode, and every restore obligation, recorded before the
//! action that creates it. It is rewritten whole and atomically (temp file, fsync,
//! rename, fsync of the directory), mode 0600, before each action on AWS.
//!
//! The same facts that matter across machines are also kept on AWS ([`marks`]); the
//! journal adds the evidence and the history for `status`.

pub mod marks;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rollout::state::InstanceState;
use crate::verify::Verdict;
use marks::{GroupOwed, InstanceDebt, RunId};

/// The journal format this version writes and reads.
pub const SCHEMA: u32 = 1;

/// Where a run stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Running, or ended without saying so (killed): resumable.
    Running,
    /// Stopped early on purpose (interrupt, lease lost): resumable.
    Stopped,
    /// Ended: every instance reached a final state, nothing is owed.
    Finished,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Stopped => "stopped",
            RunStatus::Finished => "finished",
        })
    }
}

/// One instance's last known state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEntry {
    pub container_instance_arn: String,
    #[serde(flatten)]
    pub state: InstanceState,
    /// Unix seconds of the last change.
    pub at: i64,
}

/// What the run owes one instance until it is put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceObligation {
    pub container_instance_arn: String,
    pub debts: std::collections::BTreeSet<InstanceDebt>,
}

/// The state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub schema: u32,
    pub run: RunId,
    pub account: String,
    pub region: String,
    pub cluster: String,
    pub started_at: i64,
    pub updated_at: i64,
    pub status: RunStatus,
    /// Blocking findings the operator overrode with `--force`, by id.
    pub overridden: Vec<String>,
    pub instances: BTreeMap<String, InstanceEntry>,
    /// By instance id.
    pub owed_instances: BTreeMap<String, InstanceObligation>,
    /// By Auto Scaling group name.
    pub owed_groups: BTreeMap<String, GroupOwed>,
    /// The path verdicts taken, with their evidence, by instance id (absent in journals
    /// written before verification existed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<String, Verdict>,
    /// What the run's steps took, for `--window`/`--deadline` (absent in older journals).
    #[serde(default)]
    pub estimates: crate::rollout::estimate::Estimates,
}

impl Journal {
    pub fn new(run: RunId, key: &JournalKey, started_at: i64) -> Journal {
        Journal {
            schema: SCHEMA,
            run,
            account: key.account.clone(),
            region: key.region.clone(),
            cluster: key.cluster.clone(),
            started_at,
            updated_at: started_at,
            status: RunStatus::Running,
            overridden: Vec::new(),
            instances: BTreeMap::new(),
            owed_instances: BTreeMap::new(),
            owed_groups: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            estimates: Default::default(),
        }
    }

    /// Something is still owed to an instance or a group.
    pub fn owes(&self) -> bool {
        !self.owed_instances.is_empty() || self.owed_groups.values().any(|g| !g.is_empty())
    }

    pub fn is_finished(&self) -> bool {
        self.status == RunStatus::Finished && !self.owes()
    }

    /// Instances by state name, for summaries.
    pub fn count(&self, state: &str) -> usize {
        self.instances
            .values()
            .filter(|e| e.state.name() == state)
            .count()
    }
}

/// Which cluster a journal belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalKey {
    pub account: String,
    pub region: String,
    pub cluster: String,
}

impl JournalKey {
    fn file_name(&self) -> String {
        format!("{}.{}.{}.json", self.account, self.region, self.cluster)
    }
}

/// Why a journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal {path} is unreadable ({reason}); it is kept aside as {kept}")]
    Corrupt {
        path: PathBuf,
        reason: String,
        kept: PathBuf,
    },
    #[error("the journal {path} has schema version {found}, and this privlink-restart reads version {SCHEMA}; {advice}")]
    Unsupported {
        path: PathBuf,
        found: u64,
        advice: &'static str,
    },
    #[error("cannot {action} the journal {path}: {source}; check --state-dir and its permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The directory of journals.
#[derive(Debug, Clone)]
pub struct JournalStore {
    dir: PathBuf,
}

impl JournalStore {
    pub fn new(dir: impl Into<PathBuf>) -> JournalStore {
        JournalStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, key: &JournalKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The cluster's journal, if there is one. A file that does not parse is moved aside
    /// (never silently ignored, never overwritten) and reported as [`JournalError::Corrupt`];
    /// the caller goes on from the state kept on AWS.
    pub fn load(&self, key: &JournalKey) -> Result<Option<Journal>, JournalError> {
        self.read(key, true)
    }

    /// Like [`JournalStore::load`], but leaves an unreadable file where it is (`status`
    /// changes nothing); it is reported as [`JournalError::Corrupt`] all the same.
    pub fn inspect(&self, key: &JournalKey) -> Result<Option<Journal>, JournalError> {
        self.read(key, false)
    }

    fn read(&self, key: &JournalKey, set_aside: bool) -> Result<Option<Journal>, JournalError> {
        let path = self.path(key);
        let corrupt = |reason: String| {
            if set_aside {
                self.set_aside(&path, reason)
            } else {
                JournalError::Corrupt {
                    path: path.clone(),
                    reason,
                    kept: path.clone(),
                }
            }
        };
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(JournalError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(error) => return Err(corrupt(error.to_string())),
        };
        match value.get("schema").and_then(serde_json::Value::as_u64) {
            Some(found) if found == u64::from(SCHEMA) => {}
            Some(found) if found > u64::from(SCHEMA) => {
                return Err(JournalError::Unsupported {
                    path,
                    found,
                    advice: "it was written by a newer release: resume with that release, or pass --fresh to archive it and start over",
                })
            }
            Some(found) => {
                return Err(JournalError::Unsupported {
                    path,
                    found,
                    advice: "it was written by an older release that kept no restore records this one can read: finish it with that release, or pass --fresh to archive it and start over",
                })
            }
            None => return Err(corrupt("no schema version".into())),
        }
        match serde_json::from_value(value) {
            Ok(journal) => Ok(Some(journal)),
            Err(error) => Err(corrupt(error.to_string())),
        }
    }

    fn set_aside(&self, path: &Path, reason: String) -> JournalError {
        // Never over an earlier copy: each unreadable journal is kept.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let kept = (0..)
            .map(|n| path.with_extension(format!("json.{stamp}-{n}.corrupt")))
            .find(|candidate| !candidate.exists())
            .unwrap_or_else(|| path.with_extension("json.corrupt"));
        match fs::rename(path, &kept) {
            Ok(()) => JournalError::Corrupt {
                path: path.to_path_buf(),
                reason,
                kept,
            },
            Err(source) => JournalError::Io {
                action: "move aside",
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// Writes the journal atomically: a reader (or a crash) sees the old file or the new
    /// one, never half of either.
    pub fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        let key = JournalKey {
            account: journal.account.clone(),
            region: journal.region.clone(),
            cluster: journal.cluster.clone(),
        };
        let path = self.path(&key);
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| JournalError::Io {
                action,
                path,
                source,
            }
        };
        create_private_dir(&self.dir).map_err(io("create the directory of"))?;
        let mut text = serde_json::to_vec(journal).map_err(|e| JournalError::Io {
            action: "encode",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push(b'\n');
        let temp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = private_file(&temp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            // The rename itself is durable only once the directory is.
            sync_dir(&self.dir)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map_err(io("write"))
    }

    /// Moves the cluster's journal aside (`--fresh`) as `<file>.<label>.archived` and says
    /// where it went.
    pub fn archive(&self, key: &JournalKey, label: &str) -> Result<Option<PathBuf>, JournalError> {
        let path = self.path(key);
        if !path.exists() {
            return Ok(None);
        }
        let archived = self
            .dir
            .join(format!("{}.{label}.archived", key.file_name()));
        fs::rename(&path, &archived).map_err(|source| JournalError::Io {
            action: "archive",
            path,
            source,
        })?;
        Ok(Some(archived))
    }
}

/// The platform's directory for state: `$XDG_STATE_HOME`, else `~/.local/state` (Linux,
/// macOS), `%LOCALAPPDATA%` (Windows); `None` when none of them is set.
pub fn default_state_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = non_empty("XDG_STATE_HOME")
        .or_else(|| non_empty("HOME").map(|home| home.join(".local").join("state")))
        .or_else(|| non_empty("LOCALAPPDATA"))?;
    Some(base.join("privlink-restart"))
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::File::create(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // The new directory's entry is durable only once its parent is.
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(parent)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::script::Evidence;
    use crate::rollout::state::{Proof, RebootProof};

    fn key() -> JournalKey {
        JournalKey {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            cluster: "prod".into(),
        }
    }

    fn journal() -> Journal {
        let mut journal = Journal::new(RunId::new(1_800_000_000, 7), &key(), 1_800_000_000);
        let evidence = Evidence {
            ok: true,
            reason: None,
            method: "systemd".into(),
            supervisor: "systemd".into(),
            agent_version: Some("1.80.0".into()),
            restart_at: 10,
            agent_started: 12,
            acs_connected: 14,
            credentials_before: "200".into(),
            credentials_after: "200".into(),
            boot_id: None,
        };
        journal.instances.insert(
            "i-1".into(),
            InstanceEntry {
                container_instance_arn: "arn:ci/1".into(),
                state: InstanceState::Done {
                    evidence: Proof::Restart(evidence),
                },
                at: 1_800_000_100,
            },
        );
        journal.instances.insert(
            "i-4".into(),
            InstanceEntry {
                container_instance_arn: "arn:ci/4".into(),
                state: InstanceState::Done {
                    evidence: Proof::Reboot(RebootProof {
                        method: "reboot".into(),
                        rebooted_at: 20,
                        back_at: 90,
                        boot_id_before: None,
                        boot_id_after: None,
                        disconnect_seen: true,
                    }),
                },
                at: 1_800_000_100,
            },
        );
        // Every fallback state, each carrying fields of its own beside the entry's `at`.
        let proof = RebootProof {
            method: "reboot".into(),
            rebooted_at: 20,
            back_at: 90,
            boot_id_before: Some("b-1".into()),
            boot_id_after: Some("b-2".into()),
            disconnect_seen: false,
        };
        let fallback = [
            InstanceState::NeedsReboot {
                reason: "SSM does not manage the instance".into(),
            },
            InstanceState::Draining {
                reason: "SSM ping is ConnectionLost".into(),
            },
            InstanceState::Rebooting {
                rebooted_at: 20,
                boot_id_before: Some("b-1".into()),
            },
            InstanceState::Rejoining {
                rebooted_at: 20,
                boot_id_before: None,
            },
            InstanceState::Restoring { proof },
        ];
        for (n, state) in fallback.into_iter().enumerate() {
            journal.instances.insert(
                format!("i-f{n}"),
                InstanceEntry {
                    container_instance_arn: format!("arn:ci/f{n}"),
                    state,
                    at: 1_800_000_050,
                },
            );
        }
        journal.instances.insert(
            "i-2".into(),
            InstanceEntry {
                container_instance_arn: "arn:ci/2".into(),
                state: InstanceState::Restarting {
                    command_id: "c-1".into(),
                },
                at: 1_800_000_090,
            },
        );
        journal.owed_instances.insert(
            "i-2".into(),
            InstanceObligation {
                container_instance_arn: "arn:ci/2".into(),
                debts: [InstanceDebt::Activate].into(),
            },
        );
        journal
    }

    #[test]
    fn a_saved_journal_reads_back_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(dir.path().join("state"));
        assert!(store.load(&key()).unwrap().is_none());
        store.save(&journal()).unwrap();
        assert_eq!(store.load(&key()).unwrap(), Some(journal()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path(&key()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temp file stays behind: {leftovers:?}"
        );
    }

    #[test]
    fn a_truncated_journal_is_reported_and_kept_aside_never_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(dir.path());
        store.save(&journal()).unwrap();
        let path = store.path(&key());
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        let error = store.load(&key()).unwrap_err();
        assert!(matches!(error, JournalError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("kept aside"), "{error}");
        assert!(!path.exists());
        let JournalError::Corrupt { kept, .. } = error else {
            unreachable!()
        };
        assert!(kept.exists() && kept.to_string_lossy().ends_with(".corrupt"));
        // Bytes that are not even text are set aside just the same, next to the first.
        fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            store.load(&key()),
            Err(JournalError::Corrupt { .. })
        ));
        let kept_files = fs::read_dir(store.dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".corrupt")
            })
            .count();
        assert_eq!(kept_files, 2);
    }

    #[test]
    fn journals_of_other_schema_versions_are_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(dir.path());
        for (found, advice) in [(2, "newer release"), (0, "older release")] {
            let mut value = serde_json::to_value(journal()).unwrap();
            value["schema"] = found.into();
            fs::write(store.path(&key()), value.to_string()).unwrap();
            let error = store.load(&key()).unwrap_err().to_string();
            assert!(
                error.contains(&format!("schema version {found}")),
                "{error}"
            );
            assert!(
                error.contains(advice) && error.contains("--fresh"),
                "{error}"
            );
            assert!(
                store.path(&key()).exists(),
                "a journal of another version is left as it is"
            );
        }
    }

    #[test]
    fn archiving_moves_the_journal_aside_by_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(dir.path());
        store.save(&journal()).unwrap();
        let archived = store.archive(&key(), &journal().run.0).unwrap().unwrap();
        assert!(archived
            .to_string_lossy()
            .ends_with(".20270115T080000Z-0007.archived"));
        assert!(store.load(&key()).unwrap().is_none());
    }

    #[test]
    fn a_journal_is_unfinished_while_anything_is_owed() {
        let mut journal = journal();
        journal.status = RunStatus::Finished;
        assert!(!journal.is_finished());
        journal.owed_instances.clear();
        assert!(journal.is_finished());
    }
}
