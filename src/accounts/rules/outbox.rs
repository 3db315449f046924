//! How a queued mail stands (`mail_outbox.status`).

crate::stored_enum! {
    /// How a queued mail stands: `pending` until an attempt ends; then `sent` (the mail API
    /// took it), `logged` (no mail API is configured: it went to the log) or `failed` (to be
    /// retried).
    pub enum MailStatus ("mail status") {
        Pending = "pending",
        Sent = "sent",
        Logged = "logged",
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::store::mailed_tokens::Purpose;
    use crate::core::stored::check;

    #[test]
    fn mail_statuses_and_token_purposes_map_to_their_columns_both_ways() {
        check::<MailStatus>();
        check::<Purpose>();
    }
}
