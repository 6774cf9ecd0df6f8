//! Dialogs (RFC 3261 §12). Integrator's temporary stub of the contract; sip-message owns it.

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, thiserror::Error)]
#[error("dialog: {0}")]
pub struct DialogError(pub String);

#[derive(Clone, Debug)]
pub struct Dialog {
    id: DialogId,
}

impl Dialog {
    pub fn uas(invite: &rsip::Request, local_tag: &str, local_contact: rsip::Uri) -> Result<Dialog, DialogError> {
        let _ = (invite, local_tag, local_contact);
        todo!()
    }
    pub fn uac(invite: &rsip::Request, response: &rsip::Response) -> Result<Dialog, DialogError> {
        let _ = (invite, response);
        todo!()
    }
    pub fn id(&self) -> &DialogId {
        &self.id
    }
    pub fn matches(&self, request: &rsip::Request) -> bool {
        let _ = request;
        todo!()
    }
    pub fn new_request(
        &mut self,
        method: rsip::Method,
        via_host: &str,
        via_port: u16,
        transport: rsip::Transport,
    ) -> (rsip::Request, rsip::Uri) {
        let _ = (method, via_host, via_port, transport);
        todo!()
    }
    pub fn ack_for_2xx(&mut self, invite_cseq: u32, via_host: &str, via_port: u16) -> (rsip::Request, rsip::Uri) {
        let _ = (invite_cseq, via_host, via_port);
        todo!()
    }
}
