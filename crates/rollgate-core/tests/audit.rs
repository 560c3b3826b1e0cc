//! The hash chain detects every edited, dropped or reordered event and names the first bad one.

mod common;

use common::*;
use rollgate_core::audit::{Tamper, verify_stream};
use rollgate_core::event::RecordedEvent;
use rollgate_core::plan::Plan;
use rollgate_core::rollout::rehearsal::Rehearsal;

fn log() -> Vec<RecordedEvent> {
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), at(THURSDAY)).unwrap();
    r.pass_gates(at(THURSDAY));
    let events = r.events().to_vec();
    assert!(events.len() > 20, "a long enough log to tamper with");
    events
}

#[test]
fn an_intact_log_verifies_and_reports_its_head() {
    let events = log();
    let verified = verify_stream(&events).unwrap().unwrap();
    assert_eq!(verified.events, events.len() as u64);
    assert_eq!(verified.head, events.last().unwrap().hash);
}

#[test]
fn every_single_edit_is_caught_at_the_edited_event() {
    let events = log();
    for i in 0..events.len() {
        let mut tampered = events.clone();
        tampered[i].body = tampered[i].body.replacen("rehearsal", "forged", 1).replacen("alice", "mallory", 1);
        if tampered[i].body == events[i].body {
            tampered[i].body.push(' ');
        }
        let failure = verify_stream(&tampered).unwrap_err();
        assert_eq!((failure.seq, failure.tamper.clone()), (i as u64 + 1, Tamper::Edited), "{failure}");
    }
}

#[test]
fn an_edit_that_rehashes_its_event_breaks_the_next_link() {
    let mut events = log();
    let target = &mut events[4];
    target.body = target.body.replacen("passed in rehearsal", "passed, honestly", 1);
    target.hash = rollgate_core::audit::chain_hash(&target.stream, target.seq, &target.prev_hash, &target.body);
    let failure = verify_stream(&events).unwrap_err();
    assert_eq!(failure.seq, 6);
    assert_eq!(failure.tamper, Tamper::Dropped, "{failure}");
}

#[test]
fn a_dropped_event_is_named() {
    let events = log();
    for i in 0..events.len() - 1 {
        let mut tampered = events.clone();
        tampered.remove(i);
        let failure = verify_stream(&tampered).unwrap_err();
        assert_eq!((failure.seq, failure.tamper.clone()), (i as u64 + 1, Tamper::Dropped), "{failure}");
    }
}

#[test]
fn reordered_events_are_named_whether_rows_or_bodies_were_swapped() {
    let events = log();
    // Whole rows swapped and renumbered to look contiguous.
    let mut rows = events.clone();
    rows.swap(3, 7);
    rows[3].seq = 4;
    rows[7].seq = 8;
    let failure = verify_stream(&rows).unwrap_err();
    assert_eq!((failure.seq, failure.tamper), (4, Tamper::Reordered), "{}", failure.detail);
    // Rows swapped with their original numbers: out of position.
    let mut unsorted = events.clone();
    unsorted.swap(3, 7);
    let failure = verify_stream(&unsorted).unwrap_err();
    assert_eq!(failure.seq, 4, "{failure}");
}
