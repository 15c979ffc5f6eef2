//! WebRTC signaling: offers, answers and candidates relayed to the partner (checked at the
//! edge, typed here), hang-ups and rejects, and the call timer on the caller's node. Each
//! fails with `unavailable` when the partner is away or on a node this one cannot reach.

use chat_domain::webrtc::{CallKind, IceCandidate, SessionDescription};
use chat_domain::{Timestamp, UserId};

use super::ChatService;
use crate::delivery::Outgoing;
use crate::error::ChatError;
use crate::links::Call;

impl ChatService {
    /// `webrtc:offer`: relays the offer and starts the call timer on this node (not for an
    /// offer that renegotiates an answered call).
    pub fn offer(
        &self,
        user: &UserId,
        offer: SessionDescription,
        kind: CallKind,
    ) -> Result<(), ChatError> {
        let (room, partner, own, _) = self.sides(user, true)?;
        let local = self.route(&partner)?;
        let timer = {
            let mut state = self.state();
            let generation = state.next_generation();
            let link = state
                .links
                .get_mut(user)
                .filter(|link| link.room_id() == &room.room_id)
                .ok_or_else(ChatError::not_in_chat)?;
            // An offer during an answered call renegotiates it: no new timer.
            let renegotiation = link.call.as_ref().is_some_and(|call| call.answered);
            (!renegotiation).then(|| {
                link.call = Some(Call {
                    caller: user.clone(),
                    answered: false,
                    timer: Some(generation),
                });
                generation
            })
        };
        self.deliver_to(
            &partner,
            Outgoing::Offer {
                offer,
                kind,
                from: user.clone(),
                from_username: own,
                timestamp: Timestamp::now(),
            },
            local,
        );
        if let Some(generation) = timer {
            let caller = user.clone();
            self.after(self.inner.config.call_timeout, move |service| async move {
                service.call_timer_fired(&caller, generation);
            });
        }
        Ok(())
    }

    /// The call timer `generation` of `caller` ran out: unless the call was answered or
    /// ended, both sides get `webrtc:call-timeout`.
    fn call_timer_fired(&self, caller: &UserId, generation: u64) {
        let fired = {
            let mut state = self.state();
            let Some(link) = state.links.get_mut(caller) else {
                return;
            };
            match &link.call {
                Some(call) if call.timer == Some(generation) && !call.answered => {
                    link.call = None;
                    link.sides(caller)
                }
                _ => None,
            }
        };
        let Some((partner, own)) = fired else { return };
        for to in [caller, &partner] {
            self.deliver(
                to,
                Outgoing::CallTimeout {
                    from: caller.clone(),
                    from_username: own.clone(),
                },
            );
        }
    }

    /// `webrtc:answer`: relays the answer and stops the call timer.
    pub fn answer(&self, user: &UserId, answer: SessionDescription) -> Result<(), ChatError> {
        let (_, partner, own, _) = self.sides(user, true)?;
        let local = self.route(&partner)?;
        if let Some(call) = self
            .state()
            .links
            .get_mut(user)
            .and_then(|link| link.call.as_mut())
            .filter(|call| &call.caller != user)
        {
            call.answered = true;
        }
        self.deliver_to(
            &partner,
            Outgoing::Answer {
                answer,
                from: user.clone(),
                from_username: own,
            },
            local,
        );
        Ok(())
    }

    /// `webrtc:ice-candidate`: relays one candidate.
    pub fn candidate(&self, user: &UserId, candidate: IceCandidate) -> Result<(), ChatError> {
        let (_, partner, _, _) = self.sides(user, true)?;
        let local = self.route(&partner)?;
        self.deliver_to(
            &partner,
            Outgoing::Candidate {
                candidate,
                from: user.clone(),
            },
            local,
        );
        Ok(())
    }

    /// `webrtc:call-end` (`reject` false) or `webrtc:call-reject` (`reject` true): relays it and
    /// stops the call timer.
    pub fn end_call(&self, user: &UserId, reject: bool) -> Result<(), ChatError> {
        let (_, partner, own, _) = self.sides(user, true)?;
        if let Some(link) = self.state().links.get_mut(user) {
            link.call = None;
        }
        // The call is over here either way; the partner hears of it if reachable.
        let local = self.route(&partner)?;
        let (from, from_username) = (user.clone(), own);
        let event = if reject {
            Outgoing::CallRejected {
                from,
                from_username,
            }
        } else {
            Outgoing::CallEnded {
                from,
                from_username,
            }
        };
        self.deliver_to(&partner, event, local);
        Ok(())
    }
}
