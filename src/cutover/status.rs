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
    let raw_record = fleet.read_record(cluster, Record::Run).await?;
    let record = raw_record.as_deref().and_then(RunRecord::parse);
    let lease = fleet
        .read_record(cluster, Record::Lease)
        .await?
        .and_then(|v| serde_json::from_str::<LeaseRecord>(&v).ok());
    let group_marks = fleet.group_marks().await?;
    let prior = prior::gather(&inventory, journal.clone(), record.clone(), &group_marks);
    notes.extend(prior.warnings.iter().cloned());
    notes.extend(prior.unreadable.iter().cloned());

    // The last run: the newer of the journal and the record on AWS.
    let last = match (&journal, &record) {
        (Some(j), Some(r)) if r.run > j.run => {
            Some((r.run.clone(), r.status, r.started, r.updated, false))
        }
        (Some(j), _) => Some((j.run.clone(), j.status, j.started_at, j.updated_at, true)),
        (None, Some(r)) => Some((r.run.clone(), r.status, r.started, r.updated, false)),
        (None, None) => None,
    };
    let mut instances: Vec<Value> = Vec::new();
    if let Some(journal) = journal
        .as_ref()
        .filter(|j| last.as_ref().is_some_and(|l| l.0 == j.run))
    {
        for (id, entry) in &journal.instances {
            let mut value = serde_json::to_value(&entry.state).unwrap_or(Value::Null);
            value["instance_id"] = json!(id);
            value["at"] = json!(rfc3339(entry.at));
            instances.push(value);
        }
    } else {
        for (id, done) in &prior.done {
            instances.push(json!({"instance_id": id, "state": "done", "at": rfc3339(done.at), "source": "marker on the container instance"}));
        }
    }
    let mut owed: Vec<String> = Vec::new();
    if prior.owes() {
        owed.extend(
            prior
                .describe()
                .lines()
                .filter(|l| l.starts_with("Owed"))
                .map(str::to_string),
        );
    }
    let unfinished = last.as_ref().is_some_and(|l| l.1 != RunStatus::Finished)
        || prior.owes()
        || !prior.unreadable.is_empty();
    match output {
        OutputFormat::Json => {
            let doc = json!({
                "schema": JSON_SCHEMA,
                "kind": "status",
                "cluster": inventory.cluster.name,
                "region": inventory.cluster.region,
                "run": last.as_ref().map(|(run, status, started, updated, local)| json!({
                    "id": run, "status": status, "started": rfc3339(*started), "updated": rfc3339(*updated),
                    "journal": if *local { store.map(|s| s.path(&key).display().to_string()) } else { None },
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
                Some((run, status, started, updated, local)) => {
                    let status = serde_json::to_value(status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "Run {run}: {status}, started {}, last change {}\n",
                        rfc3339(*started),
                        rfc3339(*updated)
                    ));
                    text.push_str(&match (local, store) {
                        (true, Some(store)) => format!("Journal: {}\n", store.path(&key).display()),
                        _ => "Journal: none on this machine; shown from the records kept on AWS\n"
                            .into(),
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
                                format!(
                                    "agent started {}, ACS {}",
                                    e["agent_started"], e["acs_connected"]
                                )
                            })
                        })
                        .unwrap_or_default();
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
