//! `status`: the journal of the last or ongoing run merged with what is kept on AWS (run
//! record, lease, done markers, restore records): per instance its state, since when and
//! its evidence, and what is still owed. Reads only; exit 0 when nothing is unfinished or
//! owed, 1 otherwise.

use serde_json::{json, Value};

use super::journal_key;
use super::prior::{self, RunRecord};
use crate::clock::rfc3339;
use crate::exit;
use crate::fleet::{Fleet, FleetError, Record};
use crate::journal::{JournalError, JournalStore, RunStatus};
use crate::lease::LeaseRecord;
use crate::report::{OutputFormat, JSON_SCHEMA};

/// Shows the cluster's run state; returns the exit code.
pub async fn status<F: Fleet>(
    fleet: &F,
    cluster: &str,
    store: Option<&JournalStore>,
    output: OutputFormat,
    console: &mut dyn super::Console,
) -> Result<i32, FleetError> {
    let inventory = fleet.discover(cluster).await?;
    // The records are kept under the cluster's name, whether it was given by name or ARN.
    let cluster = inventory.cluster.name.as_str();
    let key = journal_key(&inventory.cluster);
    let mut notes = Vec::new();
    let journal = match store.map(|s| s.inspect(&key)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(journal))) => Some(journal),
        Some(Err(error @ (JournalError::Corrupt { .. } | JournalError::Unsupported { .. }))) => {
            notes.push(error.to_string());
            None
        }
        Some(Err(error)) => {
            console.err(&format!("error: {error}\n"));
            return Ok(exit::USAGE);
        }
    };
    let raw_record = crate::fleet::patiently(|| fleet.read_record(cluster, Record::Run)).await?;
    let record = raw_record.as_deref().and_then(RunRecord::parse);
    let raw_lease = crate::fleet::patiently(|| fleet.read_record(cluster, Record::Lease)).await?;
    let lease = raw_lease.as_deref().and_then(LeaseRecord::parse);
    // Said, not skipped: a record this version cannot read is not the same as none.
    for (raw, parsed, kind) in [
        (&raw_record, record.is_some(), Record::Run),
        (&raw_lease, lease.is_some(), Record::Lease),
    ] {
        if raw.is_some() && !parsed {
            notes.push(format!(
                "{} holds something this version cannot read; it is left out here (a newer release wrote it, or it was edited)",
                kind.parameter(cluster)
            ));
        }
    }
    let group_marks = crate::fleet::patiently(|| fleet.group_marks()).await?;
    let prior = prior::gather(&inventory, journal.clone(), record.clone(), &group_marks);
    notes.extend(prior.warnings.iter().cloned());
    notes.extend(prior.unreadable.iter().cloned());

    // The last run, and whether this machine's journal is of it: the record on AWS where
    // it supersedes the journal (the same rule as resuming).
    let last: Option<(RunRecord, bool)> = match (journal.as_ref().map(RunRecord::of), record) {
        (Some(local), Some(aws)) if aws.supersedes(&local) => Some((aws, false)),
        (Some(local), _) => Some((local, true)),
        (None, aws) => aws.map(|r| (r, false)),
    };
    let local = last.as_ref().is_some_and(|(_, local)| *local);
    let mut instances: Vec<Value> = Vec::new();
    if let Some(journal) = journal.as_ref().filter(|_| local) {
        for (id, entry) in &journal.instances {
            let mut value = serde_json::to_value(&entry.state).unwrap_or(Value::Null);
            value["instance_id"] = json!(id);
            value["at"] = json!(rfc3339(entry.at));
            if let Some(verdict) = journal.verdicts.get(id) {
                value["verdict"] = serde_json::to_value(verdict).unwrap_or(Value::Null);
            }
            instances.push(value);
        }
    } else {
        for (id, done) in &prior.done {
            instances.push(json!({"instance_id": id, "state": "done", "at": rfc3339(done.at), "source": "marker on the container instance"}));
        }
    }
    let owed = prior.debts();
    let journal_path = store
        .filter(|_| local)
        .map(|s| s.path(&key).display().to_string());
    let unfinished = last
        .as_ref()
        .is_some_and(|(r, _)| r.status != RunStatus::Finished)
        || prior.owes()
        || !prior.unreadable.is_empty();
    match output {
        OutputFormat::Json => {
            let doc = json!({
                "schema": JSON_SCHEMA,
                "kind": "status",
                "cluster": inventory.cluster.name,
                "region": inventory.cluster.region,
                "run": last.as_ref().map(|(r, _)| json!({
                    "id": r.run, "status": r.status, "started": rfc3339(r.started),
                    "updated": rfc3339(r.updated), "journal": journal_path,
                })),
                "lease": lease.as_ref().map(|l| json!({
                    "owner": l.owner, "started": rfc3339(l.started), "expires": rfc3339(l.expires),
                })),
                "instances": instances,
                "owed": owed,
                "notes": notes,
            });
            console.out(&(doc.to_string() + "\n"));
        }
        OutputFormat::Human => {
            let mut text = format!(
                "Cluster {} ({})\n",
                inventory.cluster.name, inventory.cluster.region
            );
            match &last {
                None => text.push_str("No run on record.\n"),
                Some((r, _)) => {
                    text.push_str(&format!(
                        "Run {}: {}, started {}, last change {}\n",
                        r.run,
                        r.status,
                        rfc3339(r.started),
                        rfc3339(r.updated)
                    ));
                    text.push_str(&match &journal_path {
                        Some(path) => format!("Journal: {path}\n"),
                        None => {
                            "Journal: none on this machine; shown from the records kept on AWS\n"
                                .into()
                        }
                    });
                }
            }
            match &lease {
                Some(l) => text.push_str(&format!(
                    "Lease: held by {} since {}, until {}\n",
                    l.owner,
                    rfc3339(l.started),
                    rfc3339(l.expires)
                )),
                None => text.push_str("Lease: free\n"),
            }
            if !instances.is_empty() {
                text.push_str(
                    "\nINSTANCE              STATE         SINCE                 DETAIL\n",
                );
                for value in &instances {
                    let detail = value
                        .get("reason")
                        .or_else(|| value.get("command_id"))
                        .or_else(|| value.get("source"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or_else(|| {
                            value.get("evidence").map(|e| {
                                let time = |v: &Value| v.as_i64().map_or("-".into(), rfc3339);
                                if e["method"] == "reboot" {
                                    format!(
                                        "rebooted {}, back {}",
                                        time(&e["rebooted_at"]),
                                        time(&e["back_at"])
                                    )
                                } else {
                                    format!(
                                        "agent started {}, ACS {}",
                                        time(&e["agent_started"]),
                                        time(&e["acs_connected"])
                                    )
                                }
                            })
                        })
                        .unwrap_or_default();
                    let path = value["verdict"]["path"]
                        .as_str()
                        .map(|p| format!(" · path {p}"))
                        .unwrap_or_default();
                    let detail = format!("{detail}{path}");
                    text.push_str(&format!(
                        "{:<21} {:<13} {:<21} {}\n",
                        value["instance_id"].as_str().unwrap_or_default(),
                        value["state"].as_str().unwrap_or_default(),
                        value["at"].as_str().unwrap_or_default(),
                        detail
                    ));
                }
            }
            text.push('\n');
            if owed.is_empty() {
                text.push_str("Nothing is owed.\n");
            } else {
                for line in &owed {
                    text.push_str(&format!("{line}\n"));
                }
            }
            for note in &notes {
                text.push_str(&format!("note: {note}\n"));
            }
            if unfinished {
                text.push_str(&format!(
                    "Finish it with: privlink-restart --region {} --cluster {} --resume\n",
                    inventory.cluster.region, inventory.cluster.name
                ));
            }
            console.out(&text);
        }
    }
    Ok(if unfinished { exit::BLOCKED } else { exit::OK })
}
