//! Dialogs (RFC 3261 §12): identity, route set, CSeq, and building in-dialog requests.
//!
//! OWNER: sip-message helper.
