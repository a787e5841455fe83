//! SIP NOTIFY from the proxy (Cisco "Provisioning Formats", *Enable Parameters*): `Event: resync`, `report`,
//! `reboot_now`, `restart_now`; the datagrams go through [`crate::sip::NotifyAgent`].

use super::*;

impl Phone {
    /// A SIP NOTIFY from the proxy, already authenticated (the phone challenges it with a 401 first: 003, *Enable
    /// Parameters*). `Event: resync` resyncs when `Resync_From_SIP` is Yes; `report` uploads the `Report_Rule`
    /// reports; `reboot_now` and `restart_now` restart the phone. Returns whether the phone acted on it.
    pub fn sip_notify(&mut self, now: u64, event: &str) -> bool {
        self.now = now;
        let event = event.trim().to_ascii_lowercase();
        self.note(Event::SipNotify(event.clone()));
        match event.as_str() {
            "resync" if self.enabled("Resync_From_SIP") => {
                self.resync_now(now);
                true
            }
            "resync" => {
                self.note(Event::SipIgnored { resync_off: true });
                false
            }
            "report" => {
                self.report(now);
                true
            }
            "reboot_now" | "restart_now" => {
                self.boot(now);
                true
            }
            _ => {
                self.note(Event::SipIgnored { resync_off: false });
                false
            }
        }
    }

    /// A SIP datagram arrives for the phone's line (`--sip ADDR`): answered by `agent` with line 1's credentials
    /// (`Auth_ID_1_`, or `User_ID_1_`, and `Password_1_`); an authenticated NOTIFY goes on to
    /// [`Phone::sip_notify`]. Returns the SIP response to send back.
    pub fn sip_datagram(&mut self, now: u64, datagram: &[u8], agent: &mut crate::sip::NotifyAgent) -> Option<String> {
        self.now = now;
        let auth_id = self.state.value("Auth_ID_1_");
        let user = if auth_id.trim().is_empty() { self.state.value("User_ID_1_") } else { auth_id };
        let answer = agent.handle(datagram, &user, &self.state.value("Password_1_"))?;
        self.note(Event::Sip(answer.note));
        if let Some(event) = answer.event {
            self.sip_notify(now, &event);
        }
        Some(answer.response)
    }
}
