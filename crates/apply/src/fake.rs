//! An in-memory libvirt for the unit tests: domains' stored and live XML, and a log of
//! the calls that change them. The real daemon is exercised by crates/kvmtune/tests.

use std::cell::RefCell;
use std::collections::BTreeMap;

use kvmtune_libvirt::{DomainRef, LibvirtError, MemTuneSet, Virt};

pub struct Fake {
    pub inactive: RefCell<BTreeMap<String, String>>,
    pub live: RefCell<BTreeMap<String, String>>,
    pub calls: RefCell<Vec<String>>,
    pub fail_on: Option<String>,
}

impl Fake {
    pub fn new(name: &str, xml: &str, running: bool) -> Fake {
        let f = Fake {
            inactive: RefCell::new(BTreeMap::new()),
            live: RefCell::new(BTreeMap::new()),
            calls: RefCell::new(Vec::new()),
            fail_on: None,
        };
        f.inactive.borrow_mut().insert(name.into(), xml.into());
        if running {
            f.live.borrow_mut().insert(name.into(), xml.into());
        }
        f
    }
    fn call(&self, c: String) -> Result<(), LibvirtError> {
        let fail = self.fail_on.as_deref() == Some(c.as_str());
        self.calls.borrow_mut().push(c.clone());
        if fail {
            return Err(LibvirtError {
                op: c,
                message: "injected failure".into(),
            });
        }
        Ok(())
    }
}

fn missing(name: &str) -> LibvirtError {
    LibvirtError {
        op: format!("look up domain {name}"),
        message: "Domain not found".into(),
    }
}

impl Virt for Fake {
    fn uri(&self) -> &str {
        "fake:///"
    }
    fn list(&self) -> Result<Vec<DomainRef>, LibvirtError> {
        Ok(self
            .inactive
            .borrow()
            .keys()
            .map(|n| DomainRef {
                state: String::new(),
                name: n.clone(),
                uuid: "u".into(),
                active: self.live.borrow().contains_key(n),
                id: None,
            })
            .collect())
    }
    fn xml(&self, name: &str, inactive: bool) -> Result<String, LibvirtError> {
        let m = if inactive { &self.inactive } else { &self.live };
        m.borrow().get(name).cloned().ok_or_else(|| missing(name))
    }
    fn is_active(&self, name: &str) -> Result<bool, LibvirtError> {
        Ok(self.live.borrow().contains_key(name))
    }
    fn define_xml(&self, xml: &str) -> Result<(), LibvirtError> {
        let (_, d) = kvmtune_domain::Domain::parse(xml).map_err(|e| LibvirtError {
            op: "define".into(),
            message: e.to_string(),
        })?;
        self.call(format!("define {}", d.name))?;
        self.inactive.borrow_mut().insert(d.name, xml.into());
        Ok(())
    }
    fn pin_vcpu(&self, name: &str, vcpu: u32, cpus: &[u32]) -> Result<(), LibvirtError> {
        self.call(format!("pin {name} {vcpu} {cpus:?}"))?;
        // like libvirt, record the pin in the live definition
        let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
        let p = crate::plan::PlanDomain {
            vcpupin: [(vcpu, list.join(","))].into(),
            ..Default::default()
        };
        let mut live = self.live.borrow_mut();
        if let Some(x) = live.get_mut(name) {
            *x = crate::plan::apply_to_xml(x, &p).map_err(|e| LibvirtError {
                op: "pin".into(),
                message: e,
            })?;
        }
        Ok(())
    }
    fn pin_emulator(&self, name: &str, cpus: &[u32]) -> Result<(), LibvirtError> {
        self.call(format!("emulatorpin {name} {cpus:?}"))
    }
    fn set_vcpus(&self, name: &str, count: u32) -> Result<(), LibvirtError> {
        self.call(format!("setvcpus {name} {count}"))
    }
    fn set_numa_nodeset(&self, name: &str, n: &str) -> Result<(), LibvirtError> {
        self.call(format!("nodeset {name} {n}"))
    }
    fn set_memtune(&self, name: &str, _s: MemTuneSet) -> Result<(), LibvirtError> {
        self.call(format!("memtune {name}"))
    }
    fn set_memory(&self, name: &str, kib: u64) -> Result<(), LibvirtError> {
        self.call(format!("setmem {name} {kib}"))
    }
}
