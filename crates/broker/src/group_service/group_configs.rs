//! Group configs (Kafka 4's config resource GROUP) as the coordinators take them: a group's
//! configs live in the metadata image, so every node reads the same ones and they survive
//! restarts; before each call about a group, its effective settings (the broker's with the
//! group's over them) are read from the newest image and handed to the pure coordinator, so an
//! altered config applies from the group's next heartbeat, fetch or acquisition.

use strom_coordinator::consumer_group::ConsumerGroupConfig;
use strom_coordinator::share_group::ShareGroupConfig;

use super::{GroupService, State};

impl GroupService {
    /// Group `group_id`'s KIP-848 settings if it has group configs (`None`: the broker's).
    pub(crate) fn consumer_group_config(&self, group_id: &str) -> Option<ConsumerGroupConfig> {
        let image = self.metadata.image();
        image.group_configs.get(group_id).map(|c| self.config.consumer_group_config(c))
    }

    /// Group `group_id`'s KIP-932 settings if it has group configs (`None`: the broker's); the
    /// share partitions' leaders take them from here too.
    pub fn share_group_config(&self, group_id: &str) -> Option<ShareGroupConfig> {
        let image = self.metadata.image();
        image.group_configs.get(group_id).map(|c| self.config.share_group_config(c))
    }

    /// Hands the coordinators the settings of every group with group configs that `mine`
    /// selects, before their offsets partition is replayed: replayed members' sessions then run
    /// on their group's own timeout, also a member that never heartbeats again.
    pub(super) fn install_group_configs(&self, state: &mut State, mine: impl Fn(&str) -> bool) {
        let image = self.metadata.image();
        for (group, configs) in image.group_configs.iter().filter(|(g, _)| mine(g)) {
            state.consumer.set_group_config(group, Some(self.config.consumer_group_config(configs)));
            state.share.set_group_config(group, Some(self.config.share_group_config(configs)));
        }
    }
}
