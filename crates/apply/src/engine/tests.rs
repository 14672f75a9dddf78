//! The transaction logic against an in-memory libvirt. The real daemon is exercised by
//! crates/kvmtune/tests/apply.rs.
use super::*;
use crate::fake::Fake;
use crate::journal::{Journal, Status};
use crate::settings;
use crate::sha256;
use std::path::PathBuf;

const OLD: &str = "<domain type='kvm'><name>a</name><memory unit='KiB'>1024</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>";
const NEW: &str = "<domain type='kvm'><name>a</name><memory unit='KiB'>1024</memory><vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/><vcpupin vcpu='1' cpuset='2'/></cputune><os><type>hvm</type></os></domain>";

fn request(base: &str) -> Request {
    let want = settings::read_xml(NEW).unwrap();
    Request {
        domains: vec![DomainChange {
            name: "a".into(),
            base_sha256: sha256(base),
            new_inactive: Some(NEW.into()),
            live_target: Some(want),
            reasons: vec!["test".into()],
        }],
        ..Request::default()
    }
}

fn env(f: &Fake) -> Env<'_> {
    Env {
        virt: f,
        root: PathBuf::from("/nonexistent"),
        proc: None,
        host_cpus: "0-3".into(),
        remote: false,
    }
}

#[test]
fn applies_in_order_then_rolls_back() {
    let f = Fake::new("a", OLD, true);
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(t.path()).unwrap();
    let lock = j.lock().unwrap();
    let e = env(&f);
    let prep = prepare(&e, &request(OLD)).unwrap();
    assert_eq!(prep.entry.steps.len(), 3);
    let r = execute(&e, &j, &lock, &prep, &|_, _| Vec::new()).unwrap();
    assert_eq!(r.status, Status::Applied, "{r:?}");
    assert_eq!(
        *f.calls.borrow(),
        vec!["define a", "pin a 0 [1]", "pin a 1 [2]"]
    );
    assert_eq!(f.inactive.borrow()["a"], NEW);
    f.calls.borrow_mut().clear();
    let rb = rollback(&e, &j, &lock, &r.id, false).unwrap();
    assert!(rb.ok, "{rb:?}");
    assert_eq!(f.inactive.borrow()["a"], OLD);
    // the stored definition first, then the pins go back to every CPU
    assert_eq!(
        *f.calls.borrow(),
        vec!["define a", "pin a 0 [0, 1, 2, 3]", "pin a 1 [0, 1, 2, 3]"]
    );
}

#[test]
fn a_failed_step_restores_everything_and_says_which() {
    let mut f = Fake::new("a", OLD, true);
    f.fail_on = Some("pin a 1 [2]".into());
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(t.path()).unwrap();
    let lock = j.lock().unwrap();
    let e = env(&f);
    let prep = prepare(&e, &request(OLD)).unwrap();
    let r = execute(&e, &j, &lock, &prep, &|_, _| Vec::new()).unwrap();
    assert_eq!(r.status, Status::Failed);
    assert!(r.error.unwrap().contains("step 3 (a)"));
    assert_eq!(f.inactive.borrow()["a"], OLD, "stored XML restored");
    assert_eq!(r.steps_done, 2);
    assert_eq!(
        j.describe(&r.id, false).status,
        crate::journal::EntryStatus::Failed
    );
}

#[test]
fn a_failed_verification_also_rolls_back() {
    let f = Fake::new("a", OLD, false);
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(t.path()).unwrap();
    let lock = j.lock().unwrap();
    let e = env(&f);
    let prep = prepare(&e, &request(OLD)).unwrap();
    let r = execute(&e, &j, &lock, &prep, &|_, _| {
        vec!["cpu-mode: not in effect".into()]
    })
    .unwrap();
    assert_eq!(r.status, Status::Failed);
    assert!(r.error.unwrap().contains("cpu-mode"));
    assert_eq!(f.inactive.borrow()["a"], OLD);
}

#[test]
fn a_domain_changed_since_the_plan_is_refused() {
    let f = Fake::new("a", OLD, false);
    let e = env(&f);
    let err = prepare(&e, &request("<domain>other</domain>")).unwrap_err();
    assert!(err.to_string().contains("changed since"), "{err}");
    assert!(f.calls.borrow().is_empty());
    let mut missing = request(OLD);
    missing.domains[0].name = "b".into();
    assert!(
        prepare(&e, &missing)
            .unwrap_err()
            .to_string()
            .contains("no such domain")
    );
}

#[test]
fn rollback_refuses_to_undo_someone_elses_later_change() {
    let f = Fake::new("a", OLD, false);
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(t.path()).unwrap();
    let lock = j.lock().unwrap();
    let e = env(&f);
    let prep = prepare(&e, &request(OLD)).unwrap();
    let r = execute(&e, &j, &lock, &prep, &|_, _| Vec::new()).unwrap();
    let edited = NEW.replace("<memory unit='KiB'>1024", "<memory unit='KiB'>2048");
    f.inactive.borrow_mut().insert("a".into(), edited.clone());
    let err = rollback(&e, &j, &lock, &r.id, false).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(f.inactive.borrow()["a"], edited);
    assert!(rollback(&e, &j, &lock, &r.id, true).unwrap().ok);
    assert_eq!(f.inactive.borrow()["a"], OLD);
}

/// Two domains, `a` and `b`, each asked for new pins in its stored definition.
fn two_domains() -> (Fake, Request) {
    let f = Fake::new("a", OLD, false);
    let old_b = OLD.replace("<name>a</name>", "<name>b</name>");
    let new_b = NEW.replace("<name>a</name>", "<name>b</name>");
    f.inactive.borrow_mut().insert("b".into(), old_b.clone());
    let mut req = request(OLD);
    req.domains[0].live_target = None;
    req.domains.push(DomainChange {
        name: "b".into(),
        base_sha256: sha256(&old_b),
        new_inactive: Some(new_b),
        live_target: None,
        reasons: vec!["test".into()],
    });
    (f, req)
}

#[test]
fn a_domain_defined_by_someone_else_during_the_apply_stops_it() {
    let (f, req) = two_domains();
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(t.path()).unwrap();
    let lock = j.lock().unwrap();
    let e = env(&f);
    let prep = prepare(&e, &req).unwrap();
    // someone defines b between the state being read and b's define
    let theirs = OLD
        .replace("<name>a</name>", "<name>b</name>")
        .replace("1024", "2048");
    f.inactive.borrow_mut().insert("b".into(), theirs.clone());
    let r = execute(&e, &j, &lock, &prep, &|_, _| Vec::new()).unwrap();
    assert_eq!(r.status, Status::Conflict, "{r:?}");
    assert!(r.error.unwrap().contains("changed during the apply"));
    // their change survives, ours to a was rolled back, b was never defined by us
    assert_eq!(f.inactive.borrow()["b"], theirs);
    assert_eq!(f.inactive.borrow()["a"], OLD);
    assert_eq!(*f.calls.borrow(), vec!["define a", "define a"]);
    assert_eq!(
        j.describe(&r.id, false).status,
        crate::journal::EntryStatus::Conflict
    );
}

#[test]
fn a_signal_stops_before_the_next_step_and_rolls_back() {
    let (f, req) = two_domains();
    let t = tempfile::tempdir().unwrap();
    let j = Journal::open(t.path()).unwrap();
    let lock = j.lock().unwrap();
    let e = env(&f);
    let prep = prepare(&e, &req).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // the signal arrives while a's step runs (here: during its verification)
    let check = |name: &str, _: &str| {
        if name == "a" {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Vec::new()
    };
    let r = execute_until(&e, &j, &lock, &prep, &check, &stop).unwrap();
    assert_eq!(r.status, Status::Interrupted, "{r:?}");
    assert_eq!(r.steps_done, 1);
    assert_eq!(f.inactive.borrow()["a"], OLD);
    assert!(!f.calls.borrow().iter().any(|c| c == "define b"));
    assert_eq!(
        j.describe(&r.id, false).status,
        crate::journal::EntryStatus::InterruptedRolledBack
    );
}

#[test]
fn a_new_definition_of_another_domain_is_refused() {
    let f = Fake::new("a", OLD, false);
    f.inactive.borrow_mut().insert(
        "victim".into(),
        OLD.replace("<name>a</name>", "<name>victim</name>"),
    );
    let mut req = request(OLD);
    req.domains[0].new_inactive = Some(NEW.replace("<name>a</name>", "<name>victim</name>"));
    let err = prepare(&env(&f), &req).unwrap_err().to_string();
    assert!(err.contains("defines domain victim, not a"), "{err}");
    assert!(f.calls.borrow().is_empty());
}
