//! The invariants that compare the model with the shared store, checked after every step
//! once in-flight work has settled.

use chat_domain::Timestamp;
use chat_storage::{ChatStore, MemoryStore, SessionStore};
use tokio::time::Instant;

use super::model::{Checked, Model, NODE_TIMEOUT, SLACK, violation};

/// What the world tells the checks besides the store.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// Some bus is paused: views may lag behind the store.
    pub paused: bool,
}

impl Model {
    /// Every invariant of the model against the store, after a step.
    pub async fn check(&mut self, store: &MemoryStore, conditions: Conditions) -> Checked {
        let now = Instant::now();
        for (label, room) in std::mem::take(&mut self.two_rooms) {
            if matches!(store.room(&room).await, Ok(Some(_))) {
                return violation(
                    "nobody is in two rooms",
                    format!("u{label} was matched again while {room} is still open"),
                );
            }
        }
        self.check_ended(store, now, conditions.paused).await?;
        if !conditions.paused {
            self.check_rooms(store, now).await?;
            self.unmet()?;
        }
        if !conditions.paused && now >= self.last_disruption + self.grace + NODE_TIMEOUT + SLACK {
            self.check_stats(store).await?;
        }
        Ok(())
    }

    /// Ended sessions stay gone, and their sockets are told within the node timeout.
    async fn check_ended(&self, store: &MemoryStore, now: Instant, paused: bool) -> Checked {
        for user in self.users.values() {
            let Some(ended) = user.ended else { continue };
            if matches!(store.get(&user.id).await, Ok(Some(_))) {
                return violation(
                    "no deleted session comes back",
                    format!("u{} is in the store again", user.label),
                );
            }
            // A paused bus may hold the news: the deadline runs from its resume.
            let late = !paused && now > ended.max(self.last_resume) + NODE_TIMEOUT + SLACK;
            if late && let Some(socket) = user.socket {
                return violation(
                    "an ended session's socket is told within the node timeout",
                    format!(
                        "u{} ended {:?} ago; its socket s{} on n{} is still open",
                        user.label,
                        now - ended,
                        socket.id,
                        socket.slot
                    ),
                );
            }
            if late && user.expiry == Some(false) {
                return violation(
                    "an expired session is swept",
                    format!("u{} expired {:?} ago", user.label, now - ended),
                );
            }
        }
        Ok(())
    }

    /// Connected users see the room the store has for them, both members of a room see the
    /// same room, and a partner who went away is noticed in time.
    async fn check_rooms(&self, store: &MemoryStore, now: Instant) -> Checked {
        for user in self.users.values() {
            if user.ended.is_some() || user.socket.is_none() {
                continue;
            }
            let label = user.label;
            let record = store.room_of(&user.id).await.ok().flatten();
            let stored = record.as_ref().and_then(|record| {
                let partner = record.partner_of(&user.id)?;
                Some((record.room_id.clone(), partner.0.clone()))
            });
            let seen = user
                .view
                .as_ref()
                .map(|view| (view.room.clone(), view.partner.clone()));
            if stored != seen {
                let show = |side: &Option<(chat_domain::RoomId, chat_domain::UserId)>| {
                    side.as_ref().map_or_else(
                        || "no room".to_owned(),
                        |(room, partner)| format!("{room} with {}", self.name(partner)),
                    )
                };
                return violation(
                    "a user's room is their last match:found minus room:closed",
                    format!(
                        "u{label} sees {}, the store has {}",
                        show(&seen),
                        show(&stored)
                    ),
                );
            }
            let Some(view) = &user.view else { continue };
            let Some(partner) = self
                .label_of(&view.partner)
                .and_then(|partner| self.users.get(&partner))
            else {
                continue;
            };
            if let Some(ended) = partner.ended {
                if now > ended + NODE_TIMEOUT + SLACK {
                    return violation(
                        "the partner of an ended session is told",
                        format!(
                            "u{label} still sees {} with u{}, whose session ended {:?} ago",
                            view.room,
                            partner.label,
                            now - ended
                        ),
                    );
                }
            } else if partner.socket.is_some() {
                let agrees = partner
                    .view
                    .as_ref()
                    .is_some_and(|other| other.room == view.room && other.partner == user.id);
                if !agrees {
                    return violation(
                        "both members of a room see the same room",
                        format!(
                            "u{label} sees {} with u{}, who sees {}",
                            view.room,
                            partner.label,
                            partner.view.as_ref().map_or_else(
                                || "no room".to_owned(),
                                |other| other.room.to_string()
                            )
                        ),
                    );
                }
            } else {
                let since = partner.gone_since.max(view.since).max(self.last_resume);
                if now > since + self.grace + NODE_TIMEOUT + SLACK {
                    return violation(
                        "the partner of a user gone for good is told",
                        format!(
                            "u{label} still sees {} with u{}, without a socket for {:?}",
                            view.room,
                            partner.label,
                            now - partner.gone_since
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Once quiet, the store's counters are the model's truth.
    async fn check_stats(&self, store: &MemoryStore) -> Checked {
        let Ok(stats) = store.stats(Timestamp::now()).await else {
            return violation("stats answer", "the store failed".to_owned());
        };
        let alive: Vec<_> = self
            .users
            .values()
            .filter(|user| user.ended.is_none())
            .collect();
        let online: Vec<_> = alive.iter().filter(|user| user.socket.is_some()).collect();
        let truth = [
            ("totalUsers", alive.len() as u64, stats.total_users),
            ("onlineUsers", online.len() as u64, stats.online_users),
            (
                "availableUsers",
                online.iter().filter(|user| user.searching).count() as u64,
                stats.available_users,
            ),
            (
                "usersInChat",
                online.iter().filter(|user| user.view.is_some()).count() as u64,
                stats.users_in_chat,
            ),
        ];
        for (name, expected, counted) in truth {
            if expected != counted {
                return violation(
                    "stats equal the model once quiet",
                    format!("{name} is {counted}, the model says {expected}"),
                );
            }
        }
        Ok(())
    }
}
