//! An inventory in memory: the same rules as [`super::SqliteStore`] (unique MACs, groups that exist, no inheritance
//! cycles, all-or-nothing imports, a revision that moves on every change), nothing on disk. For tests that drive the
//! provisioning core in process, and for `provisor serve --data-dir :memory:`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{Device, Group, Mac, Store, StoreError};

/// Devices and groups in memory; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    devices: BTreeMap<Mac, Device>,
    groups: BTreeMap<String, Group>,
    armed: std::collections::BTreeSet<Mac>,
    phone_certificates: BTreeMap<Mac, Vec<u8>>,
    tokens: BTreeMap<String, super::AdminToken>,
    users: BTreeMap<String, super::AdminUser>,
    sessions: BTreeMap<String, super::AdminSession>,
    revision: i64,
}

impl State {
    fn check_group(&self, group: &Option<String>) -> Result<(), StoreError> {
        match group {
            Some(g) if !self.groups.contains_key(g) => Err(StoreError::NoGroup(g.clone())),
            _ => Ok(()),
        }
    }

    fn insert(&mut self, device: &Device) -> Result<(), StoreError> {
        if self.devices.contains_key(&device.mac) {
            return Err(StoreError::DeviceExists(device.mac.clone()));
        }
        self.check_group(&device.group)?;
        self.devices.insert(device.mac.clone(), device.clone());
        self.armed.insert(device.mac.clone());
        Ok(())
    }
}

impl MemoryStore {
    /// An empty inventory.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps half-written: every change below is one insert or remove.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(state: &mut State) {
        state.revision += 1;
    }
}

impl Store for MemoryStore {
    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        let mut s = self.state();
        s.insert(device)?;
        Self::changed(&mut s);
        Ok(())
    }

    async fn apply_import(
        &self,
        add: &[Device],
        update: &[Device],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        let before = s.devices.clone();
        let armed_before = s.armed.clone();
        let result = (|| {
            for d in add {
                s.insert(d)?;
            }
            for d in update {
                s.check_group(&d.group)?;
                let slot = s.devices.get_mut(&d.mac).ok_or_else(|| StoreError::NoDevice(d.mac.clone()))?;
                *slot = d.clone();
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                Self::changed(&mut s);
                progress(add.len() + update.len());
                Ok(())
            }
            Err(e) => {
                s.devices = before;
                s.armed = armed_before;
                Err(e)
            }
        }
    }

    async fn update_device(&self, device: &Device) -> Result<(), StoreError> {
        let mut s = self.state();
        s.check_group(&device.group)?;
        let Some(slot) = s.devices.get_mut(&device.mac) else { return Err(StoreError::NoDevice(device.mac.clone())) };
        *slot = device.clone();
        Self::changed(&mut s);
        Ok(())
    }

    async fn device(&self, mac: &Mac) -> Result<Option<Device>, StoreError> {
        Ok(self.state().devices.get(mac).cloned())
    }

    async fn devices(&self) -> Result<Vec<Device>, StoreError> {
        Ok(self.state().devices.values().cloned().collect())
    }

    async fn remove_device(&self, mac: &Mac) -> Result<bool, StoreError> {
        let mut s = self.state();
        let removed = s.devices.remove(mac).is_some();
        s.armed.remove(mac);
        s.phone_certificates.remove(mac);
        if removed {
            Self::changed(&mut s);
        }
        Ok(removed)
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        let mut s = self.state();
        let mut next = group.parent.clone();
        while let Some(p) = next {
            if p == group.name {
                return Err(StoreError::GroupCycle(group.name.clone()));
            }
            next = s.groups.get(&p).ok_or_else(|| StoreError::NoGroup(p.clone()))?.parent.clone();
        }
        s.groups.insert(group.name.clone(), group.clone());
        Self::changed(&mut s);
        Ok(())
    }

    async fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        Ok(self.state().groups.get(name).cloned())
    }

    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        Ok(self.state().groups.values().cloned().collect())
    }

    async fn remove_group(&self, name: &str) -> Result<bool, StoreError> {
        let mut s = self.state();
        let used = s.devices.values().filter(|d| d.group.as_deref() == Some(name)).count();
        if used > 0 {
            return Err(StoreError::GroupInUse(name.into(), format!("{used} device(s)")));
        }
        let children = s.groups.values().filter(|g| g.parent.as_deref() == Some(name)).count();
        if children > 0 {
            return Err(StoreError::GroupInUse(name.into(), format!("{children} group(s)")));
        }
        let removed = s.groups.remove(name).is_some();
        if removed {
            Self::changed(&mut s);
        }
        Ok(removed)
    }

    async fn device_by_path_token(&self, token: &str) -> Result<Option<(Device, bool)>, StoreError> {
        if token.is_empty() {
            return Ok(None);
        }
        let s = self.state();
        Ok(s.devices.values().find_map(|d| {
            if d.secrets.path_token == token {
                Some((d.clone(), false))
            } else if d.secrets.previous.as_ref().is_some_and(|p| p.path_token == token) {
                Some((d.clone(), true))
            } else {
                None
            }
        }))
    }

    async fn forget_previous_secrets(&self, mac: &Mac) -> Result<(), StoreError> {
        let mut s = self.state();
        let forgot = s.devices.get_mut(mac).is_some_and(|d| d.secrets.previous.take().is_some());
        if forgot {
            Self::changed(&mut s);
        }
        Ok(())
    }

    async fn arm(&self, mac: &Mac) -> Result<(), StoreError> {
        let mut s = self.state();
        if !s.devices.contains_key(mac) {
            return Err(StoreError::NoDevice(mac.clone()));
        }
        s.armed.insert(mac.clone());
        Ok(())
    }

    async fn take_armed(&self, mac: &Mac) -> Result<bool, StoreError> {
        Ok(self.state().armed.remove(mac))
    }

    async fn is_armed(&self, mac: &Mac) -> Result<bool, StoreError> {
        Ok(self.state().armed.contains(mac))
    }

    async fn set_phone_certificate(&self, mac: &Mac, der: Option<&[u8]>) -> Result<(), StoreError> {
        let mut s = self.state();
        if !s.devices.contains_key(mac) {
            return Err(StoreError::NoDevice(mac.clone()));
        }
        match der {
            Some(d) => s.phone_certificates.insert(mac.clone(), d.to_vec()),
            None => s.phone_certificates.remove(mac),
        };
        Self::changed(&mut s);
        Ok(())
    }

    async fn phone_certificate(&self, mac: &Mac) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().phone_certificates.get(mac).cloned())
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        Ok(self.state().revision)
    }

    async fn devices_page(
        &self,
        after: Option<&Mac>,
        limit: u32,
        filter: &super::DeviceFilter,
    ) -> Result<Vec<Device>, StoreError> {
        use std::ops::Bound;
        let s = self.state();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(s.devices
            .range::<Mac, _>((from, Bound::Unbounded))
            .map(|(_, d)| d)
            .filter(|d| filter.matches(d))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn add_token(&self, token: &super::AdminToken) -> Result<(), StoreError> {
        let mut s = self.state();
        if s.tokens.contains_key(&token.name) {
            return Err(StoreError::TokenExists(token.name.clone()));
        }
        s.tokens.insert(token.name.clone(), token.clone());
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<super::AdminToken>, StoreError> {
        Ok(self.state().tokens.values().find(|t| t.hash == hash).cloned())
    }

    async fn tokens(&self) -> Result<Vec<super::AdminToken>, StoreError> {
        Ok(self.state().tokens.values().cloned().collect())
    }

    async fn remove_token(&self, name: &str) -> Result<bool, StoreError> {
        let mut s = self.state();
        let principal = format!("token:{name}");
        s.sessions.retain(|_, v| v.principal != principal);
        Ok(s.tokens.remove(name).is_some())
    }

    async fn add_user(&self, user: &super::AdminUser) -> Result<(), StoreError> {
        let mut s = self.state();
        if s.users.contains_key(&user.name) {
            return Err(StoreError::UserExists(user.name.clone()));
        }
        s.users.insert(user.name.clone(), user.clone());
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<super::AdminUser>, StoreError> {
        Ok(self.state().users.get(name).cloned())
    }

    async fn users(&self) -> Result<Vec<super::AdminUser>, StoreError> {
        Ok(self.state().users.values().cloned().collect())
    }

    async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let mut s = self.state();
        let principal = format!("user:{name}");
        s.sessions.retain(|_, v| v.principal != principal);
        Ok(s.users.remove(name).is_some())
    }

    async fn add_session(&self, session: &super::AdminSession, now_ms: i64) -> Result<(), StoreError> {
        let mut s = self.state();
        s.sessions.retain(|_, v| v.expires_ms > now_ms);
        s.sessions.insert(session.hash.clone(), session.clone());
        Ok(())
    }

    async fn session(&self, hash: &str, now_ms: i64) -> Result<Option<super::AdminSession>, StoreError> {
        Ok(self.state().sessions.get(hash).filter(|v| v.expires_ms > now_ms).cloned())
    }

    async fn remove_session(&self, hash: &str) -> Result<(), StoreError> {
        self.state().sessions.remove(hash);
        Ok(())
    }

    async fn model_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for d in self.state().devices.values() {
            *counts.entry(d.model.clone()).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }
}
