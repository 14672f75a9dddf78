//! What libvirt tells about the host it runs on: the facts kvmtune reads over a remote
//! connection, where the host's /sys and /proc are out of reach. Capabilities (CPU, NUMA
//! cells, CPUs with their siblings, page pools, distances), node info, free memory per cell,
//! free pages per cell and size, and KSM's counters (node memory parameters, `shm_*`).
//!
//! The `virt` crate wraps neither virNodeGetMemoryParameters nor virNodeAllocPages: those
//! call libvirt directly, each `unsafe` block with its reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use virt::sys;

use crate::{Libvirt, LibvirtError};

/// The page sizes (KiB) whose free counts are asked for: 4 KiB, 2 MiB and 1 GiB pages.
pub const PAGE_SIZES_KIB: [u32; 3] = [4, 2048, 1_048_576];

/// Host facts read through libvirt. A part libvirt refused is absent and its error is in
/// `errors` (one line each).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeFacts {
    pub uri: String,
    pub hostname: Option<String>,
    /// The capabilities XML (`virsh capabilities`).
    pub capabilities: Option<String>,
    pub memory_kib: Option<u64>,
    pub cpus: Option<u32>,
    pub mhz: Option<u32>,
    pub free_memory_bytes: Option<u64>,
    /// Free memory per NUMA cell, bytes, cell 0 first.
    pub cells_free_bytes: Vec<u64>,
    /// Free pages: (cell, page size KiB) → count.
    pub free_pages: BTreeMap<String, u64>,
    /// Node memory parameters (`shm_pages_shared`, `shm_merge_across_nodes`, ...).
    pub memory_parameters: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

impl NodeFacts {
    /// The key of [`NodeFacts::free_pages`].
    pub fn page_key(cell: u32, size_kib: u32) -> String {
        format!("{cell}:{size_kib}")
    }
}

impl Libvirt {
    /// Everything [`NodeFacts`] holds. Never fails: what libvirt refuses is an error line.
    pub fn node_facts(&self) -> NodeFacts {
        let mut f = NodeFacts {
            uri: self.uri.clone(),
            ..NodeFacts::default()
        };
        match self.hostname() {
            Ok(h) => f.hostname = Some(h),
            Err(e) => f.errors.push(e.to_string()),
        }
        match self.capabilities() {
            Ok(c) => f.capabilities = Some(c),
            Err(e) => f.errors.push(e.to_string()),
        }
        let mut cells = 1u32;
        match self.conn.node_info() {
            Ok(i) => {
                f.memory_kib = Some(i.memory);
                f.cpus = Some(i.cpus);
                f.mhz = (i.mhz > 0).then_some(i.mhz);
                cells = i.nodes.max(1);
            }
            Err(e) => f
                .errors
                .push(LibvirtError::new("node info", &e).to_string()),
        }
        // the capabilities know the real cell count (node info says 1 for odd topologies)
        if let Some(c) = &f.capabilities
            && let Some(n) = count_cells(c)
        {
            cells = n.max(1);
        }
        match self.conn.free_memory() {
            Ok(b) => f.free_memory_bytes = Some(b),
            Err(e) => f
                .errors
                .push(LibvirtError::new("free memory", &e).to_string()),
        }
        match self.conn.cells_free_memory(0, cells as i32) {
            Ok(v) => f.cells_free_bytes = v,
            Err(e) => f
                .errors
                .push(LibvirtError::new("free memory per cell", &e).to_string()),
        }
        for size in PAGE_SIZES_KIB {
            match self.conn.free_pages(&[size], 0, cells, 0) {
                Ok(v) => {
                    for (cell, n) in v.into_iter().enumerate() {
                        f.free_pages
                            .insert(NodeFacts::page_key(cell as u32, size), n);
                    }
                }
                // a page size the host does not have: nothing to say
                Err(_) => continue,
            }
        }
        match self.node_memory_parameters() {
            Ok(p) => f.memory_parameters = p,
            Err(e) => f.errors.push(e.to_string()),
        }
        f
    }

    /// The node memory parameters (KSM's `shm_*` counters and settings), as numbers.
    pub fn node_memory_parameters(&self) -> Result<BTreeMap<String, u64>, LibvirtError> {
        let mut n: std::os::raw::c_int = 0;
        // SAFETY: with a NULL array and *nparams == 0 libvirt only writes the number of
        // parameters into `n`; the connection pointer is valid for the life of `self.conn`.
        let r = unsafe {
            sys::virNodeGetMemoryParameters(self.conn.as_ptr(), std::ptr::null_mut(), &mut n, 0)
        };
        if r < 0 {
            let err = virt::error::Error::last_error();
            return Err(LibvirtError::new("node memory parameters", &err));
        }
        if n <= 0 {
            return Ok(BTreeMap::new());
        }
        // SAFETY: virTypedParameter is a plain C struct (a name array, a type tag and a
        // union of numbers and a pointer): all-zero bytes are a valid, empty value.
        let mut params: Vec<sys::virTypedParameter> =
            vec![unsafe { std::mem::zeroed() }; n as usize];
        // SAFETY: `params` has room for `n` parameters, as libvirt asked; it fills at most
        // `n` of them and sets `n` to the number filled.
        let r = unsafe {
            sys::virNodeGetMemoryParameters(self.conn.as_ptr(), params.as_mut_ptr(), &mut n, 0)
        };
        if r < 0 {
            let err = virt::error::Error::last_error();
            return Err(LibvirtError::new("node memory parameters", &err));
        }
        let filled = (n.max(0) as usize).min(params.len());
        let mut out = BTreeMap::new();
        for p in &params[..filled] {
            // SAFETY: libvirt wrote a NUL-terminated name into the 80-byte field, and the
            // union member read matches the type tag it set.
            let (name, value) = unsafe {
                let name = std::ffi::CStr::from_ptr(p.field.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                let value = match p.type_ as u32 {
                    sys::VIR_TYPED_PARAM_INT => u64::try_from(p.value.i).ok(),
                    sys::VIR_TYPED_PARAM_UINT => Some(u64::from(p.value.ui)),
                    sys::VIR_TYPED_PARAM_LLONG => u64::try_from(p.value.l).ok(),
                    sys::VIR_TYPED_PARAM_ULLONG => Some(p.value.ul),
                    _ => None,
                };
                (name, value)
            };
            if let Some(v) = value {
                out.insert(name, v);
            }
        }
        // SAFETY: the parameters hold no strings (numbers only were asked for); clearing
        // frees any that libvirt might have set, once, and leaves the Vec's memory to Rust.
        unsafe { sys::virTypedParamsClear(params.as_mut_ptr(), filled as std::os::raw::c_int) };
        Ok(out)
    }

    /// Set one node memory parameter of type unsigned int (`shm_merge_across_nodes`,
    /// `shm_pages_to_scan`, `shm_sleep_millisecs`).
    pub fn set_node_memory_parameter(&self, name: &str, value: u32) -> Result<(), LibvirtError> {
        if name.len() >= 80 || name.contains('\0') {
            return Err(LibvirtError::msg(format!(
                "node memory parameter {name:?}: not a parameter name"
            )));
        }
        // SAFETY: all-zero bytes are a valid virTypedParameter (see above).
        let mut p: sys::virTypedParameter = unsafe { std::mem::zeroed() };
        for (i, b) in name.bytes().enumerate() {
            p.field[i] = b as std::os::raw::c_char;
        }
        p.type_ = sys::VIR_TYPED_PARAM_UINT as std::os::raw::c_int;
        p.value.ui = value;
        // SAFETY: one initialised parameter with a NUL-terminated name (the field was
        // zeroed and the name is shorter than it); libvirt only reads it.
        let r = unsafe { sys::virNodeSetMemoryParameters(self.conn.as_ptr(), &mut p, 1, 0) };
        if r < 0 {
            let err = virt::error::Error::last_error();
            return Err(LibvirtError::new(
                format!("set node memory parameter {name}"),
                &err,
            ));
        }
        Ok(())
    }

    /// Set the number of pages of a size (KiB) in the pool of one NUMA cell, or of the whole
    /// host (`cell` None), as virsh allocpages --all/--cellno does (virNodeAllocPages SET).
    pub fn set_pages(
        &self,
        size_kib: u32,
        cell: Option<u32>,
        count: u64,
    ) -> Result<(), LibvirtError> {
        let mut sizes = [size_kib];
        let mut counts = [count];
        let (start, n, flags) = match cell {
            Some(c) => (
                i32::try_from(c).map_err(|_| LibvirtError::msg(format!("cell {c}: too large")))?,
                1,
                sys::VIR_NODE_ALLOC_PAGES_SET,
            ),
            // every cell: startCell -1 (libvirt wants a non-zero cellCount even then)
            None => (-1, 1, sys::VIR_NODE_ALLOC_PAGES_SET),
        };
        // SAFETY: one page size and one count, as npages = 1 says; libvirt only reads them.
        let r = unsafe {
            sys::virNodeAllocPages(
                self.conn.as_ptr(),
                1,
                sizes.as_mut_ptr(),
                counts.as_mut_ptr(),
                start,
                n,
                flags,
            )
        };
        if r < 0 {
            let err = virt::error::Error::last_error();
            return Err(LibvirtError::new(
                format!("set {count} pages of {size_kib} KiB"),
                &err,
            ));
        }
        Ok(())
    }
}

/// A host setting key libvirt reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKey {
    KsmMergeAcrossNodes,
    /// Pages of this size (KiB), in one cell or the whole host.
    Pages {
        cell: Option<u32>,
        size_kib: u32,
    },
}

fn parse_key(key: &str) -> Option<NodeKey> {
    if key == "ksm.merge_across_nodes" {
        return Some(NodeKey::KsmMergeAcrossNodes);
    }
    let parts: Vec<&str> = key.split('.').collect();
    let (cell, size) = match parts.as_slice() {
        ["hugepages", size] => (None, *size),
        ["hugepages", node, size] => (Some(node.strip_prefix("node")?.parse().ok()?), *size),
        _ => return None,
    };
    let size_kib = match size {
        "2M" | "2048K" | "2048kB" => 2048,
        "1G" | "1048576K" | "1048576kB" => 1_048_576,
        _ => return None,
    };
    Some(NodeKey::Pages { cell, size_kib })
}

fn unsupported(lv: &Libvirt, key: &str) -> LibvirtError {
    LibvirtError::msg(format!(
        "{key}: over a remote connection ({}) libvirt sets only hugepage pools (hugepages.SIZE, hugepages.nodeN.SIZE) and ksm.merge_across_nodes; run kvmtune on that host for the others",
        lv.uri
    ))
}

/// The total pages of `size_kib` per cell, from the capabilities' `<cell>` elements.
fn pages_per_cell(caps: &str, size_kib: u32) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    let mut rest = caps;
    while let Some(i) = rest.find("<cell id=") {
        rest = &rest[i + "<cell id=".len()..];
        // the quote, then the id up to the same quote (a hostile or cut-off XML: no id)
        let Some(q) = rest.chars().next() else { break };
        let after = &rest[q.len_utf8()..];
        let Some(id) = after
            .find(q)
            .and_then(|end| after[..end].parse::<u32>().ok())
        else {
            continue;
        };
        let body_end = rest.find("</cell>").unwrap_or(rest.len());
        let body = &rest[..body_end];
        for quote in ['\'', '"'] {
            let pat = format!("size={quote}{size_kib}{quote}>");
            if let Some(p) = body.find(&pat) {
                let after = &body[p + pat.len()..];
                if let Some(n) = after
                    .find('<')
                    .and_then(|e| after[..e].trim().parse::<u64>().ok())
                {
                    out.insert(id, n);
                }
            }
        }
    }
    out
}

pub(crate) fn read_setting(lv: &Libvirt, key: &str) -> Result<String, LibvirtError> {
    match parse_key(key).ok_or_else(|| unsupported(lv, key))? {
        NodeKey::KsmMergeAcrossNodes => lv
            .node_memory_parameters()?
            .get("shm_merge_across_nodes")
            .map(|v| v.to_string())
            .ok_or_else(|| {
                LibvirtError::msg(format!("{key}: libvirt on {} does not report it", lv.uri))
            }),
        NodeKey::Pages { cell, size_kib } => {
            let per = pages_per_cell(&lv.capabilities()?, size_kib);
            let n = match cell {
                Some(c) => per.get(&c).copied().ok_or_else(|| {
                    LibvirtError::msg(format!(
                        "{key}: no {size_kib} KiB pool on NUMA cell {c} of {}",
                        lv.uri
                    ))
                })?,
                None if per.is_empty() => {
                    return Err(LibvirtError::msg(format!(
                        "{key}: no {size_kib} KiB pages on {}",
                        lv.uri
                    )));
                }
                None => per.values().sum(),
            };
            Ok(n.to_string())
        }
    }
}

pub(crate) fn write_setting(lv: &Libvirt, key: &str, value: &str) -> Result<(), LibvirtError> {
    match parse_key(key).ok_or_else(|| unsupported(lv, key))? {
        NodeKey::KsmMergeAcrossNodes => {
            let v: u32 = match value.trim() {
                "0" => 0,
                "1" => 1,
                _ => {
                    return Err(LibvirtError::msg(format!("{key}={value}: expected 0 or 1")));
                }
            };
            lv.set_node_memory_parameter("shm_merge_across_nodes", v)
        }
        NodeKey::Pages { cell, size_kib } => {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| LibvirtError::msg(format!("{key}={value}: expected a page count")))?;
            lv.set_pages(size_kib, cell, n)
        }
    }
}

/// The number of `<cell>` elements of the capabilities' host topology.
fn count_cells(caps: &str) -> Option<u32> {
    let i = caps
        .find("<cells num='")
        .or_else(|| caps.find("<cells num=\""))?;
    let rest = &caps[i + "<cells num='".len()..];
    let end = rest.find(['\'', '"'])?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_counted_from_the_capabilities() {
        assert_eq!(
            count_cells("<host><topology><cells num='2'><cell id='0'/>"),
            Some(2)
        );
        assert_eq!(count_cells("<host/>"), None);
        assert_eq!(count_cells("<cells num='x'>"), None);
    }

    #[test]
    fn setting_keys_and_pools_are_read_from_the_capabilities() {
        assert_eq!(
            parse_key("ksm.merge_across_nodes"),
            Some(NodeKey::KsmMergeAcrossNodes)
        );
        assert_eq!(
            parse_key("hugepages.node1.1G"),
            Some(NodeKey::Pages {
                cell: Some(1),
                size_kib: 1_048_576
            })
        );
        assert_eq!(
            parse_key("hugepages.2M"),
            Some(NodeKey::Pages {
                cell: None,
                size_kib: 2048
            })
        );
        for bad in [
            "ksm.run",
            "thp.enabled",
            "hugepages.nodex.2M",
            "hugepages.3M",
            "hugepages",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
        let caps = "<cells num='2'><cell id='0'><pages unit='KiB' size='4'>100</pages>\
<pages unit='KiB' size='2048'>512</pages></cell><cell id=\"1\"><pages unit=\"KiB\" size=\"2048\">3</pages></cell></cells>";
        let per = pages_per_cell(caps, 2048);
        assert_eq!(per.get(&0), Some(&512));
        assert_eq!(per.get(&1), Some(&3));
        assert!(pages_per_cell(caps, 1_048_576).is_empty());
        assert!(pages_per_cell("<cell id='", 2048).is_empty());
        // cut off, or a multi-byte quote: no panic
        assert!(pages_per_cell("<cell id=", 2048).is_empty());
        assert!(pages_per_cell("<cell id=é0é>", 2048).is_empty());
    }

    #[test]
    fn the_test_driver_gives_node_facts() {
        let lv = Libvirt::open("test:///default", false).unwrap();
        let f = lv.node_facts();
        assert!(
            f.capabilities
                .as_deref()
                .is_some_and(|c| c.contains("<capabilities>"))
        );
        assert!(f.memory_kib.is_some_and(|m| m > 0), "{f:?}");
        assert!(f.cpus.is_some_and(|c| c > 0));
    }
}
