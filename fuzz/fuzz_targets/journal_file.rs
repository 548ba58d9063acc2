//! Journal files as a resume finds them on disk (hand-edited, cut short, from another
//! release): read through the store's own path, a journal or an error, never a panic;
//! and a journal read, written back as the tool writes it, reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privlink_restart::journal::{JournalKey, JournalStore};

thread_local! {
    static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
}

fuzz_target!(|data: &[u8]| {
    DIR.with(|dir| {
        let store = JournalStore::new(dir.path());
        let key = JournalKey {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            cluster: "fuzz".into(),
        };
        let path = store.path(&key);
        std::fs::write(&path, data).expect("the journal file is written");
        let Ok(Some(journal)) = store.inspect(&key) else {
            return;
        };
        let _ = (journal.owes(), journal.is_finished(), journal.count("done"));
        let text = serde_json::to_string(&journal).expect("a journal read serialises");
        std::fs::write(&path, &text).expect("the journal file is written");
        let again = store
            .inspect(&key)
            .expect("a journal written back reads")
            .expect("and is there");
        assert_eq!(
            serde_json::to_value(&journal).unwrap(),
            serde_json::to_value(&again).unwrap()
        );
    });
});
