//! libvirt access for kvmtune, through the `virt` crate (no `virsh` subprocess).
//!
//! Read access (capabilities, domain capabilities, every domain's inactive and live XML) and
//! the changes `kvmtune apply` makes: define a domain, and the live operations (vCPU and
//! emulator pinning, vCPU count, NUMA nodeset, memtune, balloon). The [`Virt`] trait lets the
//! apply engine run against a fake in unit tests and against a real libvirtd everywhere else.

use serde::{Deserialize, Serialize};
use virt::connect::Connect;
use virt::sys;

/// Whether a libvirt URI names this host (`qemu:///system`, `qemu:///session`), so its QEMU
/// processes are in our /proc and its sysfs is ours; a transport (`qemu+ssh://h/system`,
/// `qemu+tcp://...`) or a host part names another machine.
pub fn is_local(uri: &str) -> bool {
    match uri.split_once("://") {
        Some((scheme, rest)) => !scheme.contains('+') && rest.starts_with('/'),
        None => true,
    }
}

pub mod dynload;
pub mod node;
pub use node::NodeFacts;

/// A failed libvirt call: what kvmtune tried and libvirt's own message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("libvirt: {op}: {message}")]
pub struct LibvirtError {
    pub op: String,
    pub message: String,
}

impl LibvirtError {
    fn new(op: impl Into<String>, err: &virt::error::Error) -> Self {
        LibvirtError {
            op: op.into(),
            message: one_line(err.message()),
        }
    }
    /// An error kvmtune finds before calling libvirt.
    pub fn msg(message: impl Into<String>) -> Self {
        LibvirtError {
            op: "request".into(),
            message: message.into(),
        }
    }
}

/// libvirt's message on one line: a schema validation error spans several lines (the
/// element, the schema's complaint, the XML around it); kvmtune errors are one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One domain as listed by the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRef {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    /// The libvirt domain id of a running domain.
    pub id: Option<u32>,
    /// As virsh shows it: running, paused, shut off, crashed, ... (empty when unknown).
    #[serde(default)]
    pub state: String,
}

fn state_name(s: &virt::domain::DomainStateEnum) -> &'static str {
    use virt::domain::DomainState as S;
    use virt::enumutil::Enum;
    match s {
        Enum::Known(S::NoState) => "no state",
        Enum::Known(S::Running) => "running",
        Enum::Known(S::Blocked) => "idle",
        Enum::Known(S::Paused) => "paused",
        Enum::Known(S::Shutdown) => "in shutdown",
        Enum::Known(S::Shutoff) => "shut off",
        Enum::Known(S::Crashed) => "crashed",
        Enum::Known(S::PMSuspended) => "pmsuspended",
        Enum::Unknown(_) => "unknown",
    }
}

/// An open libvirt connection.
pub struct Libvirt {
    conn: Connect,
    uri: String,
    read_only: bool,
}

impl Libvirt {
    /// Open `uri` (e.g. `qemu:///system`, `qemu+ssh://host/system`).
    pub fn open(uri: &str, read_only: bool) -> Result<Libvirt, LibvirtError> {
        // the kvmtune binary loads libvirt now, on its first connection (see `dynload`)
        dynload::ensure_loaded()?;
        // libvirt's default handler prints every error to stderr; kvmtune reports its own.
        virt::error::clear_error_callback();
        let conn = if read_only {
            Connect::open_read_only(Some(uri))
        } else {
            Connect::open(Some(uri))
        }
        .map_err(|e| LibvirtError::new(format!("cannot connect to {uri}"), &e))?;
        Ok(Libvirt {
            conn,
            uri: uri.to_string(),
            read_only,
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the connection is read-only (then domain XML comes without its secrets).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn hostname(&self) -> Result<String, LibvirtError> {
        self.conn
            .hostname()
            .map_err(|e| LibvirtError::new("hostname", &e))
    }

    /// The host capabilities XML (`virsh capabilities`).
    pub fn capabilities(&self) -> Result<String, LibvirtError> {
        self.conn
            .capabilities()
            .map_err(|e| LibvirtError::new("capabilities", &e))
    }

    /// Domain capabilities XML for a virtualization type (`kvm` or `qemu`), with libvirt's
    /// default emulator, architecture and machine type.
    pub fn domain_capabilities(&self, virttype: &str) -> Result<String, LibvirtError> {
        self.conn
            .domain_capabilities(None, None, None, Some(virttype), 0)
            .map_err(|e| LibvirtError::new(format!("domain capabilities ({virttype})"), &e))
    }

    /// Every domain, active and inactive, sorted by name.
    pub fn domains(&self) -> Result<Vec<DomainRef>, LibvirtError> {
        let list = self
            .conn
            .list_all_domains(0)
            .map_err(|e| LibvirtError::new("list domains", &e))?;
        let mut out = Vec::with_capacity(list.len());
        for d in list {
            let name = d.name().map_err(|e| LibvirtError::new("domain name", &e))?;
            let uuid = d
                .uuid_string()
                .map_err(|e| LibvirtError::new(format!("uuid of {name}"), &e))?;
            let active = d
                .is_active()
                .map_err(|e| LibvirtError::new(format!("state of {name}"), &e))?;
            let state = d
                .state()
                .map(|(s, _)| state_name(&s).to_string())
                .unwrap_or_default();
            out.push(DomainRef {
                state,
                id: if active { d.id() } else { None },
                name,
                uuid,
                active,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A domain's XML: the stored (inactive) definition, or the live one of a running domain.
    ///
    /// On a read-write connection it is read with `VIR_DOMAIN_XML_SECURE`, so it keeps its
    /// secrets (VNC and SPICE passwords): XML that is written back, defined or journaled must
    /// hold them, or defining it would silently remove them. libvirt refuses the flag on a
    /// read-only connection; XML read there lacks the passwords, so its hash differs from
    /// the stored definition's and `apply` refuses a change computed from it.
    pub fn domain_xml(&self, name: &str, inactive: bool) -> Result<String, LibvirtError> {
        let what = if inactive { "inactive" } else { "live" };
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(|e| LibvirtError::new(format!("look up domain {name}"), &e))?;
        let mut flags = if inactive {
            sys::VIR_DOMAIN_XML_INACTIVE
        } else {
            0
        };
        if !self.read_only {
            flags |= sys::VIR_DOMAIN_XML_SECURE;
        }
        dom.xml_desc(flags)
            .map_err(|e| LibvirtError::new(format!("{what} XML of {name}"), &e))
    }
}

/// One typed value of a statistics record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatValue {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl StatValue {
    /// The value as an unsigned counter (negative and text values are not counters).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            StatValue::UInt(v) => Some(*v),
            StatValue::Int(v) => u64::try_from(*v).ok(),
            StatValue::Float(v) if *v >= 0.0 => Some(*v as u64),
            StatValue::Bool(b) => Some(u64::from(*b)),
            _ => None,
        }
    }
}

/// One domain's statistics: libvirt's typed parameters, names as `virsh domstats` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsRecord {
    pub name: String,
    /// The libvirt domain id (running domains only).
    pub id: Option<u32>,
    pub params: Vec<(String, StatValue)>,
}

/// Which groups [`Libvirt::all_domain_stats`] asks for: state, CPU total, balloon, vCPU
/// (with the per-vCPU KVM statistics libvirt reads with QMP `query-stats`) and the VM's
/// KVM statistics (`virsh domstats --state --cpu-total --balloon --vcpu --vm`).
/// The groups kvmtune asks for every interval: state, CPU total and vCPU (with the per-vCPU
/// KVM counters). [`STATS_VM`] and [`STATS_BALLOON`] cost libvirt a QMP round trip per
/// domain each and are asked for less often.
pub const STATS_BASE: u32 =
    sys::VIR_DOMAIN_STATS_STATE | sys::VIR_DOMAIN_STATS_CPU_TOTAL | sys::VIR_DOMAIN_STATS_VCPU;
/// The VM's KVM statistics (`virsh domstats --vm`: pages_4k/2m/1g, mmu_*, ...).
pub const STATS_VM: u32 = sys::VIR_DOMAIN_STATS_VM;
/// Balloon size and the process's resident memory.
pub const STATS_BALLOON: u32 = sys::VIR_DOMAIN_STATS_BALLOON;
/// State and CPU total only: [`STATS_BASE`] without the vCPU group. libvirt 9+ asks each
/// QEMU for its halt-poll times in the CPU-total group (QMP `query-stats` on every vCPU).
pub const STATS_STATE_CPU: u32 = sys::VIR_DOMAIN_STATS_STATE | sys::VIR_DOMAIN_STATS_CPU_TOTAL;
/// The state group alone (libvirt answers it without asking QEMU).
pub const STATS_STATE: u32 = sys::VIR_DOMAIN_STATS_STATE;
/// The CPU-total group alone.
pub const STATS_CPU_TOTAL: u32 = sys::VIR_DOMAIN_STATS_CPU_TOTAL;
/// The vCPU group alone (per-vCPU time, wait, delay and KVM counters, which libvirt reads
/// with QMP `query-stats`: a round trip to each QEMU).
pub const STATS_VCPU: u32 = sys::VIR_DOMAIN_STATS_VCPU;

impl Libvirt {
    /// Statistics of every running domain in one call (virConnectGetAllDomainStats).
    ///
    /// The `virt` crate's wrapper gives no access to a record's parameters and leaks the
    /// records, so this calls libvirt directly and frees the list with
    /// virDomainStatsRecordListFree.
    pub fn all_domain_stats(&self, groups: u32) -> Result<Vec<StatsRecord>, LibvirtError> {
        let mut list: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
        // SAFETY: the connection pointer is valid for the life of `self.conn`; libvirt fills
        // `list` with a NULL-terminated array of `n` records that we own until freed below.
        let n = unsafe {
            sys::virConnectGetAllDomainStats(
                self.conn.as_ptr(),
                groups,
                &mut list,
                // NOWAIT: a domain whose job is busy (a migration, a wedged monitor) gives
                // the statistics that need no job instead of blocking the call for all
                sys::VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
                    | sys::VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT,
            )
        };
        if n < 0 {
            let err = virt::error::Error::last_error();
            return Err(LibvirtError::new("domain statistics", &err));
        }
        // SAFETY: `list` and `n` are what virConnectGetAllDomainStats just returned.
        Ok(unsafe { take_records(list, n) })
    }

    /// Statistics of these running domains in one call (virDomainListGetStats), e.g. one
    /// group asked only for some domains. A domain that is not found (it stopped) is left
    /// out (each name costs libvirtd a lookup).
    pub fn domain_stats(
        &self,
        names: &[String],
        groups: u32,
    ) -> Result<Vec<StatsRecord>, LibvirtError> {
        let doms: Vec<virt::domain::Domain> = names
            .iter()
            .filter_map(|n| self.conn.lookup_domain_by_name(n).ok())
            .collect();
        if doms.is_empty() {
            return Ok(Vec::new());
        }
        let mut list: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
        // SAFETY: the domain pointers stay valid while `doms` lives (past the call); `ptrs`
        // is the NULL-terminated array libvirt expects; libvirt fills `list` with `n`
        // records that we own until freed.
        let n = unsafe {
            let mut ptrs: Vec<sys::virDomainPtr> = doms.iter().map(|d| d.as_ptr()).collect();
            ptrs.push(std::ptr::null_mut());
            sys::virDomainListGetStats(
                ptrs.as_mut_ptr(),
                groups,
                &mut list,
                sys::VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT,
            )
        };
        if n < 0 {
            let err = virt::error::Error::last_error();
            return Err(LibvirtError::new("domain statistics", &err));
        }
        // SAFETY: `list` and `n` are what virDomainListGetStats just returned.
        Ok(unsafe { take_records(list, n) })
    }

    /// A QMP command's reply on a running domain's monitor (`virsh qemu-monitor-command`).
    pub fn qmp(&self, name: &str, command: &str) -> Result<String, LibvirtError> {
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(|e| LibvirtError::new(format!("look up domain {name}"), &e))?;
        dom.qemu_monitor_command(command, 0)
            .map_err(|e| LibvirtError::new(format!("QMP on {name}"), &e))
    }
}

/// Copies the records of a list libvirt returned (`n` records, NULL-terminated) and frees it.
///
/// # Safety
/// `list` must be null or a list from virConnectGetAllDomainStats / virDomainListGetStats
/// holding `n` records, not freed yet; it is freed here.
unsafe fn take_records(list: *mut sys::virDomainStatsRecordPtr, n: i32) -> Vec<StatsRecord> {
    if list.is_null() {
        // no running domain: some drivers return no list at all
        return Vec::new();
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: i < n, and the array holds n valid record pointers.
        let rec = unsafe { *list.add(i) };
        if rec.is_null() {
            continue;
        }
        // SAFETY: `rec` points to a record of the list, alive until the list is freed;
        // its domain pointer and `nparams` parameters are valid for that long too.
        let (name, id, params) = unsafe {
            let r = &*rec;
            let name_ptr = sys::virDomainGetName(r.dom);
            let name = if name_ptr.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(name_ptr)
                    .to_string_lossy()
                    .into_owned()
            };
            let id = sys::virDomainGetID(r.dom);
            let mut params = Vec::with_capacity(r.nparams.max(0) as usize);
            for j in 0..r.nparams.max(0) as usize {
                let p = &*r.params.add(j);
                let field = std::ffi::CStr::from_ptr(p.field.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                let value = match p.type_ as u32 {
                    sys::VIR_TYPED_PARAM_INT => StatValue::Int(i64::from(p.value.i)),
                    sys::VIR_TYPED_PARAM_UINT => StatValue::UInt(u64::from(p.value.ui)),
                    sys::VIR_TYPED_PARAM_LLONG => StatValue::Int(p.value.l),
                    sys::VIR_TYPED_PARAM_ULLONG => StatValue::UInt(p.value.ul),
                    sys::VIR_TYPED_PARAM_DOUBLE => StatValue::Float(p.value.d),
                    sys::VIR_TYPED_PARAM_BOOLEAN => StatValue::Bool(p.value.b != 0),
                    sys::VIR_TYPED_PARAM_STRING if !p.value.s.is_null() => StatValue::Text(
                        std::ffi::CStr::from_ptr(p.value.s)
                            .to_string_lossy()
                            .into_owned(),
                    ),
                    _ => continue,
                };
                params.push((field, value));
            }
            (name, (id != u32::MAX).then_some(id), params)
        };
        out.push(StatsRecord { name, id, params });
    }
    // SAFETY: `list` came from libvirt's statistics call and is freed exactly once;
    // nothing borrowed from it outlives this point (all values were copied).
    unsafe { sys::virDomainStatsRecordListFree(list) };
    out
}

/// `memtune` value meaning "no limit" (libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED, in KiB).
pub const MEMTUNE_UNLIMITED_KIB: u64 = 9_007_199_254_740_991;

/// memtune limits to set live, in KiB ([`MEMTUNE_UNLIMITED_KIB`] removes a limit); `None`
/// leaves a limit as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemTuneSet {
    pub hard_limit_kib: Option<u64>,
    pub soft_limit_kib: Option<u64>,
    pub swap_hard_limit_kib: Option<u64>,
}

/// What `kvmtune apply` and `rollback` need from libvirt. Changes to the persistent
/// configuration go through [`Virt::define_xml`]; the other changes affect the running
/// domain only (libvirt's `--live`).
pub trait Virt {
    fn uri(&self) -> &str;
    /// Every domain, active and inactive.
    fn list(&self) -> Result<Vec<DomainRef>, LibvirtError>;
    /// The stored definition (`inactive`) or the running one.
    fn xml(&self, name: &str, inactive: bool) -> Result<String, LibvirtError>;
    fn is_active(&self, name: &str) -> Result<bool, LibvirtError>;
    /// Define (create or replace) a persistent domain from XML.
    fn define_xml(&self, xml: &str) -> Result<(), LibvirtError>;
    fn pin_vcpu(&self, name: &str, vcpu: u32, cpus: &[u32]) -> Result<(), LibvirtError>;
    fn pin_emulator(&self, name: &str, cpus: &[u32]) -> Result<(), LibvirtError>;
    fn set_vcpus(&self, name: &str, count: u32) -> Result<(), LibvirtError>;
    fn set_numa_nodeset(&self, name: &str, nodeset: &str) -> Result<(), LibvirtError>;
    fn set_memtune(&self, name: &str, set: MemTuneSet) -> Result<(), LibvirtError>;
    /// Balloon target in KiB.
    fn set_memory(&self, name: &str, kib: u64) -> Result<(), LibvirtError>;
    /// A host setting libvirt reaches (for a remote host): `ksm.merge_across_nodes`,
    /// `hugepages.SIZE` and `hugepages.nodeN.SIZE` (page counts; SIZE `2M`, `1G`). Others
    /// are an error.
    fn read_node_setting(&self, key: &str) -> Result<String, LibvirtError> {
        Err(LibvirtError::msg(format!(
            "{key}: not a setting libvirt can read on {}",
            self.uri()
        )))
    }
    /// Set such a setting (see [`Virt::read_node_setting`]).
    fn write_node_setting(&self, key: &str, value: &str) -> Result<(), LibvirtError> {
        let _ = value;
        Err(LibvirtError::msg(format!(
            "{key}: not a setting libvirt can set on {}",
            self.uri()
        )))
    }
}

/// A libvirt cpumap: one bit per host CPU.
pub fn cpumap(cpus: &[u32]) -> Vec<u8> {
    let max = cpus.iter().copied().max().unwrap_or(0) as usize;
    let mut map = vec![0u8; max / 8 + 1];
    for &c in cpus {
        map[c as usize / 8] |= 1 << (c % 8);
    }
    map
}

impl Libvirt {
    fn lookup(&self, name: &str) -> Result<virt::domain::Domain, LibvirtError> {
        self.conn
            .lookup_domain_by_name(name)
            .map_err(|e| LibvirtError::new(format!("look up domain {name}"), &e))
    }
}

const LIVE: u32 = sys::VIR_DOMAIN_AFFECT_LIVE;

impl Virt for Libvirt {
    fn uri(&self) -> &str {
        &self.uri
    }
    fn list(&self) -> Result<Vec<DomainRef>, LibvirtError> {
        self.domains()
    }
    fn xml(&self, name: &str, inactive: bool) -> Result<String, LibvirtError> {
        self.domain_xml(name, inactive)
    }
    fn is_active(&self, name: &str) -> Result<bool, LibvirtError> {
        self.lookup(name)?
            .is_active()
            .map_err(|e| LibvirtError::new(format!("state of {name}"), &e))
    }
    fn define_xml(&self, xml: &str) -> Result<(), LibvirtError> {
        // VALIDATE: libvirt checks the XML against its schema before accepting it
        self.conn
            .define_domain_xml_flags(xml, sys::VIR_DOMAIN_DEFINE_VALIDATE)
            .map(|_| ())
            .map_err(|e| LibvirtError::new("define domain", &e))
    }
    fn pin_vcpu(&self, name: &str, vcpu: u32, cpus: &[u32]) -> Result<(), LibvirtError> {
        self.lookup(name)?
            .pin_vcpu_flags(vcpu, &cpumap(cpus), LIVE)
            .map_err(|e| LibvirtError::new(format!("pin vCPU {vcpu} of {name}"), &e))
    }
    fn pin_emulator(&self, name: &str, cpus: &[u32]) -> Result<(), LibvirtError> {
        self.lookup(name)?
            .pin_emulator(&cpumap(cpus), LIVE)
            .map_err(|e| LibvirtError::new(format!("pin the emulator threads of {name}"), &e))
    }
    fn set_vcpus(&self, name: &str, count: u32) -> Result<(), LibvirtError> {
        self.lookup(name)?
            .set_vcpus_flags(count, sys::VIR_DOMAIN_VCPU_LIVE)
            .map_err(|e| LibvirtError::new(format!("set the vCPU count of {name} to {count}"), &e))
    }
    fn set_numa_nodeset(&self, name: &str, nodeset: &str) -> Result<(), LibvirtError> {
        let params = virt::domain::NUMAParameters {
            node_set: Some(nodeset.to_string()),
            mode: None,
        };
        self.lookup(name)?
            .set_numa_parameters(params, LIVE)
            .map_err(|e| LibvirtError::new(format!("set the NUMA nodeset of {name}"), &e))
    }
    fn set_memtune(&self, name: &str, set: MemTuneSet) -> Result<(), LibvirtError> {
        let params = virt::domain::MemoryParameters {
            hard_limit: set.hard_limit_kib,
            soft_limit: set.soft_limit_kib,
            min_guarantee: None,
            swap_hard_limit: set.swap_hard_limit_kib,
        };
        self.lookup(name)?
            .set_memory_parameters(params, LIVE)
            .map_err(|e| LibvirtError::new(format!("set memtune of {name}"), &e))
    }
    fn set_memory(&self, name: &str, kib: u64) -> Result<(), LibvirtError> {
        self.lookup(name)?
            .set_memory_flags(kib, sys::VIR_DOMAIN_MEM_LIVE)
            .map_err(|e| LibvirtError::new(format!("set the balloon of {name}"), &e))
    }
    fn read_node_setting(&self, key: &str) -> Result<String, LibvirtError> {
        node::read_setting(self, key)
    }
    fn write_node_setting(&self, key: &str, value: &str) -> Result<(), LibvirtError> {
        node::write_setting(self, key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpumap_sets_one_bit_per_cpu() {
        assert_eq!(cpumap(&[0]), vec![1]);
        assert_eq!(cpumap(&[1, 3]), vec![0b1010]);
        assert_eq!(cpumap(&[0, 9]), vec![1, 0b10]);
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(
            one_line(
                "XML document failed to validate against schema: Unable to validate\nExtra element devices in interleave\n  \nElement domain failed\n"
            ),
            "XML document failed to validate against schema: Unable to validate; Extra element devices in interleave; Element domain failed"
        );
        assert_eq!(one_line("Domain not found"), "Domain not found");
    }

    #[test]
    fn local_uris() {
        assert!(is_local("qemu:///system"));
        assert!(is_local("qemu:///session"));
        assert!(is_local("test:///default"));
        assert!(!is_local("qemu+ssh://root@host/system"));
        assert!(!is_local("qemu+tcp://10.0.0.1/system"));
        assert!(!is_local("qemu://otherhost/system"));
    }
}
