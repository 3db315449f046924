//! How a stored delivery stands (`webhook_events.status`).

crate::stored_enum! {
    /// How a stored delivery stands: `received` until applying it ends, then how it ended.
    /// A `processed` or `ignored` delivery is settled (a redelivery changes nothing); a
    /// `failed` one, or one `received` whose worker died, is retried.
    pub enum DeliveryStatus ("webhook delivery status") {
        Received = "received",
        Processed = "processed",
        Ignored = "ignored",
        Failed = "failed",
    }
}

impl DeliveryStatus {
    /// Whether a redelivery changes nothing.
    pub fn is_settled(self) -> bool {
        matches!(self, DeliveryStatus::Processed | DeliveryStatus::Ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stored::check;
    use crate::webhooks::rules::signed::Signer;

    #[test]
    fn delivery_statuses_map_to_their_column_both_ways() {
        check::<DeliveryStatus>();
        let settled: Vec<_> = DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.is_settled())
            .collect();
        assert_eq!(
            settled,
            [DeliveryStatus::Processed, DeliveryStatus::Ignored]
        );
    }

    #[test]
    fn providers_map_to_their_column_both_ways() {
        check::<Signer>();
    }
}
