//! Searching for a partner: filters, searchers, and the in-process queue (first come,
//! first served among compatible searchers). Pure, no I/O.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;
use crate::ids::UserId;
use crate::user::{ProfileField, PublicUser};

/// What a searcher asks of a partner. A field that is `None` accepts anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchFilters {
    /// Wanted gender.
    pub gender: Option<ProfileField>,
    /// Wanted language.
    pub language: Option<ProfileField>,
    /// Wanted location.
    pub location: Option<ProfileField>,
}

impl SearchFilters {
    /// Parses `{filters?: {gender?, language?, location?}}`: a missing or null `filters`, and
    /// the values `""`, `"any"` and `"all"`, mean no filter. Unknown fields are ignored.
    pub fn from_payload(payload: Option<&Value>) -> Result<Self, DomainError> {
        let filters = match payload {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(object)) => match object.get("filters") {
                None | Some(Value::Null) => return Ok(Self::default()),
                Some(Value::Object(filters)) => filters,
                Some(_) => return Err(DomainError::invalid("filters must be an object")),
            },
            Some(_) => return Err(DomainError::invalid("payload must be an object")),
        };
        let field = |name: &str| -> Result<Option<ProfileField>, DomainError> {
            match filters.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text))
                    if matches!(
                        text.trim().to_ascii_lowercase().as_str(),
                        "" | "any" | "all"
                    ) =>
                {
                    Ok(None)
                }
                Some(Value::String(text)) => {
                    ProfileField::parse(&format!("filters.{name}"), text).map(Some)
                }
                Some(_) => Err(DomainError::invalid(format!(
                    "filters.{name} must be a string"
                ))),
            }
        };
        Ok(Self {
            gender: field("gender")?,
            language: field("language")?,
            location: field("location")?,
        })
    }

    /// Whether `user`'s profile satisfies these filters.
    pub fn accepts(&self, user: &PublicUser) -> bool {
        let check = |filter: &Option<ProfileField>, value: Option<&ProfileField>| {
            filter.as_ref().is_none_or(|filter| filter.accepts(value))
        };
        check(&self.gender, user.gender.as_ref())
            && check(&self.language, user.language.as_ref())
            && check(&self.location, user.location.as_ref())
    }
}

/// One user waiting for a partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Searcher {
    /// The searcher's public profile, as of the search.
    pub user: PublicUser,
    /// What they ask of a partner.
    pub filters: SearchFilters,
    /// The partner they just left: never paired with them on this search (they wait for
    /// someone else instead), whichever of the two searches first.
    pub avoid: Option<UserId>,
    /// Users this one reported or was reported by: never paired with them, for the life of
    /// their sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<UserId>,
}

impl Searcher {
    /// Whether the two may be paired: different users whose filters accept each other.
    pub fn compatible(&self, other: &Searcher) -> bool {
        self.user.id != other.user.id
            && self.filters.accepts(&other.user)
            && other.filters.accepts(&self.user)
    }

    /// Whether either just left the other, or reported the other: such a pair is never
    /// made.
    pub fn avoids(&self, other: &Searcher) -> bool {
        self.avoid.as_ref() == Some(&other.user.id)
            || other.avoid.as_ref() == Some(&self.user.id)
            || self.blocked.contains(&other.user.id)
            || other.blocked.contains(&self.user.id)
    }
}

/// Where a searcher waits in an index of the queue by filter value, and where a newcomer
/// looks: two searchers are compatible exactly when one of the newcomer's
/// [`Searcher::wanted_buckets`] is among the other's [`Searcher::buckets`] (and then exactly
/// one is), so a store that keeps one FIFO per bucket finds the oldest compatible searcher by
/// reading at most eight bucket heads, however many incompatible searchers wait.
///
/// A bucket names a searcher's filters (each field: none, or the wanted value) and a
/// projection of its own profile onto some fields. A searcher waits in one bucket per set of
/// fields its profile has values for (up to eight); a newcomer asks, for each combination of
/// filters it satisfies (up to eight), the projection onto the fields it filters by. Values
/// compare ASCII case-insensitively, as [`ProfileField::accepts`] does; a bucket name holds
/// only `[A-Za-z0-9*=/|%._-]` (values are percent-encoded), never a space.
impl Searcher {
    /// The buckets this searcher waits in (1 to 8, distinct).
    pub fn buckets(&self) -> Vec<String> {
        let filters = filters_part(&self.filters);
        let own = profile_values(&self.user);
        subsets(&own)
            .into_iter()
            .map(|projection| format!("{filters}/{}", values_part(&projection)))
            .collect()
    }

    /// The buckets holding every queued searcher compatible with this one (1 to 8,
    /// distinct); avoidance is not part of it.
    pub fn wanted_buckets(&self) -> Vec<String> {
        let own = profile_values(&self.user);
        let wanted = values_part(&[
            self.filters.gender.as_ref().map(fold),
            self.filters.language.as_ref().map(fold),
            self.filters.location.as_ref().map(fold),
        ]);
        // The filters a queued searcher may have and still accept this one: per field none,
        // or exactly this one's value.
        subsets(&own)
            .into_iter()
            .map(|accepted| format!("{}/{wanted}", values_part(&accepted)))
            .collect()
    }
}

/// A profile value as buckets compare it.
fn fold(field: &ProfileField) -> String {
    field.as_str().to_ascii_lowercase()
}

fn profile_values(user: &PublicUser) -> [Option<String>; 3] {
    [
        user.gender.as_ref().map(fold),
        user.language.as_ref().map(fold),
        user.location.as_ref().map(fold),
    ]
}

fn filters_part(filters: &SearchFilters) -> String {
    values_part(&[
        filters.gender.as_ref().map(fold),
        filters.language.as_ref().map(fold),
        filters.location.as_ref().map(fold),
    ])
}

/// Every way to keep some of the present values and blank the rest.
fn subsets(values: &[Option<String>; 3]) -> Vec<[Option<String>; 3]> {
    let mut all = vec![[None, None, None]];
    for (field, value) in values.iter().enumerate() {
        let Some(value) = value else { continue };
        let with: Vec<_> = all
            .iter()
            .map(|subset| {
                let mut subset = subset.clone();
                subset[field] = Some(value.clone());
                subset
            })
            .collect();
        all.extend(with);
    }
    all
}

/// `g|l|c`, each `*` (none) or `=` and the percent-encoded value.
fn values_part(values: &[Option<String>; 3]) -> String {
    let mut part = String::new();
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            part.push('|');
        }
        match value {
            None => part.push('*'),
            Some(value) => {
                part.push('=');
                for byte in value.bytes() {
                    if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
                        part.push(char::from(byte));
                    } else {
                        part.push_str(&format!("%{byte:02X}"));
                    }
                }
            }
        }
    }
    part
}

/// The queue of searchers, oldest first, indexed by [`Searcher::buckets`]: a search reads
/// the heads of at most eight buckets, however many incompatible searchers wait.
#[derive(Debug, Default)]
pub struct SearchQueue {
    /// Arrivals so far; each queued searcher's arrival orders it.
    arrivals: u64,
    /// Queued searchers by id, with their arrival.
    entries: HashMap<UserId, (u64, Searcher)>,
    /// Queued ids by arrival.
    order: BTreeMap<u64, UserId>,
    /// Each bucket's queued ids by arrival.
    buckets: HashMap<String, BTreeMap<u64, UserId>>,
}

impl SearchQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of users waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `user` waits.
    pub fn contains(&self, user: &UserId) -> bool {
        self.entries.contains_key(user)
    }

    /// Removes `user` from the queue; returns whether it was there.
    pub fn remove(&mut self, user: &UserId) -> bool {
        self.take(user).is_some()
    }

    /// The searchers waiting, oldest first.
    pub fn searchers(&self) -> impl Iterator<Item = &Searcher> {
        self.order
            .values()
            .filter_map(|id| self.entries.get(id).map(|(_, searcher)| searcher))
    }

    /// Adds a searcher, or pairs it at once with the oldest compatible one (which leaves the
    /// queue and is returned). A searcher already queued is replaced (new filters). Two
    /// searchers of whom one avoids the other are never paired, even when nobody else fits.
    pub fn search(&mut self, searcher: Searcher) -> Option<Searcher> {
        self.search_among_live(searcher, |_| false)
    }

    /// [`SearchQueue::search`], where the queued searchers for which `gone` holds (their
    /// session ran out, say) are never paired: they leave the queue as the search meets them.
    pub fn search_among_live(
        &mut self,
        searcher: Searcher,
        gone: impl Fn(&Searcher) -> bool,
    ) -> Option<Searcher> {
        self.take(&searcher.user.id);
        let mut best: Option<(u64, UserId)> = None;
        let mut dead = Vec::new();
        for bucket in searcher.wanted_buckets() {
            let Some(waiting) = self.buckets.get(&bucket) else {
                continue;
            };
            for (&arrival, id) in waiting {
                if best.as_ref().is_some_and(|(oldest, _)| arrival >= *oldest) {
                    break;
                }
                let Some((_, candidate)) = self.entries.get(id) else {
                    continue;
                };
                if gone(candidate) {
                    dead.push(id.clone());
                } else if !searcher.avoids(candidate) {
                    best = Some((arrival, id.clone()));
                    break;
                }
            }
        }
        for id in &dead {
            self.take(id);
        }
        match best {
            Some((_, id)) => self.take(&id),
            None => {
                self.push(searcher);
                None
            }
        }
    }

    fn push(&mut self, searcher: Searcher) {
        self.arrivals += 1;
        let arrival = self.arrivals;
        for bucket in searcher.buckets() {
            self.buckets
                .entry(bucket)
                .or_default()
                .insert(arrival, searcher.user.id.clone());
        }
        self.order.insert(arrival, searcher.user.id.clone());
        self.entries
            .insert(searcher.user.id.clone(), (arrival, searcher));
    }

    fn take(&mut self, user: &UserId) -> Option<Searcher> {
        let (arrival, searcher) = self.entries.remove(user)?;
        self.order.remove(&arrival);
        for bucket in searcher.buckets() {
            if let Some(waiting) = self.buckets.get_mut(&bucket) {
                waiting.remove(&arrival);
                if waiting.is_empty() {
                    self.buckets.remove(&bucket);
                }
            }
        }
        Some(searcher)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use serde_json::json;

    use crate::time::Timestamp;
    use crate::user::{GuestUser, Profile};

    use super::*;

    fn user(gender: Option<&str>, language: Option<&str>) -> PublicUser {
        let profile = Profile {
            gender: gender.and_then(|value| ProfileField::parse("gender", value).ok()),
            language: language.and_then(|value| ProfileField::parse("language", value).ok()),
            ..Profile::default()
        };
        GuestUser::new(profile, Timestamp::now()).public()
    }

    fn filters(value: Value) -> SearchFilters {
        SearchFilters::from_payload(Some(&json!({ "filters": value }))).unwrap_or_default()
    }

    fn searcher(user: &PublicUser, filters: SearchFilters) -> Searcher {
        Searcher {
            user: user.clone(),
            filters,
            avoid: None,
            blocked: Vec::new(),
        }
    }

    /// Every pair of searchers over a small space of profiles and filters: compatible exactly
    /// when a wanted bucket of one is a bucket of the other, and then exactly one is.
    #[test]
    fn buckets_find_exactly_the_compatible_searchers() {
        let values = [None, Some("a"), Some("B"), Some("x y|/*")];
        let mut searchers = Vec::new();
        for gender in values {
            for language in values {
                for wanted_gender in values {
                    for wanted_language in [None, Some("b"), Some("x Y|/*")] {
                        let mut payload = serde_json::Map::new();
                        if let Some(value) = wanted_gender {
                            payload.insert("gender".into(), json!(value));
                        }
                        if let Some(value) = wanted_language {
                            payload.insert("language".into(), json!(value));
                        }
                        searchers.push(searcher(
                            &user(gender, language),
                            filters(Value::Object(payload)),
                        ));
                    }
                }
            }
        }
        let mut compatible_pairs = 0;
        for newcomer in &searchers {
            let wanted = newcomer.wanted_buckets();
            assert!(wanted.iter().all(|bucket| !bucket.contains(' ')));
            for queued in &searchers {
                let buckets = queued.buckets();
                let shared = wanted.iter().filter(|key| buckets.contains(key)).count();
                let compatible = newcomer.filters.accepts(&queued.user)
                    && queued.filters.accepts(&newcomer.user);
                assert_eq!(shared, usize::from(compatible), "{newcomer:?} / {queued:?}");
                compatible_pairs += usize::from(compatible);
            }
        }
        assert!(
            compatible_pairs > searchers.len(),
            "the space has compatible pairs"
        );
    }

    /// The indexed queue pairs exactly as a plain first-come scan would, over a long seeded
    /// schedule of searches, re-searches, cancels and avoidance.
    #[test]
    fn the_index_pairs_like_a_first_come_scan() {
        let mut reference: VecDeque<Searcher> = VecDeque::new();
        let mut queue = SearchQueue::new();
        let values = [None, Some("a"), Some("b")];
        let users: Vec<PublicUser> = (0..24)
            .map(|index| user(values[index % 3], values[(index / 3) % 3]))
            .collect();
        let mut state = 0x2545_f491_u64;
        let mut next = |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            usize::try_from(state >> 33).unwrap_or(0) % bound
        };
        for _ in 0..5000 {
            let who = &users[next(users.len())];
            if next(5) == 0 {
                let before = reference.len();
                reference.retain(|queued| queued.user.id != who.id);
                assert_eq!(queue.remove(&who.id), before != reference.len());
                continue;
            }
            let mut wanted = serde_json::Map::new();
            if let Some(gender) = values[next(3)] {
                wanted.insert("gender".into(), json!(gender));
            }
            if let Some(language) = values[next(3)] {
                wanted.insert("language".into(), json!(language));
            }
            let mut newcomer = searcher(who, filters(Value::Object(wanted)));
            if next(3) == 0 {
                newcomer.avoid = Some(users[next(users.len())].id.clone());
            }
            reference.retain(|queued| queued.user.id != who.id);
            let expected = reference
                .iter()
                .position(|queued| newcomer.compatible(queued) && !newcomer.avoids(queued))
                .and_then(|index| reference.remove(index));
            if expected.is_none() {
                reference.push_back(newcomer.clone());
            }
            assert_eq!(queue.search(newcomer), expected);
            assert_eq!(queue.len(), reference.len());
        }
        let order: Vec<&Searcher> = queue.searchers().collect();
        assert_eq!(order, reference.iter().collect::<Vec<_>>());
    }

    #[test]
    fn filter_parsing() {
        assert_eq!(
            SearchFilters::from_payload(None).ok(),
            Some(SearchFilters::default())
        );
        assert_eq!(
            SearchFilters::from_payload(Some(&json!({"filters": {"gender": "any"}}))).ok(),
            Some(SearchFilters::default())
        );
        assert!(SearchFilters::from_payload(Some(&json!({"filters": {"gender": 3}}))).is_err());
        assert!(SearchFilters::from_payload(Some(&json!({"filters": "x"}))).is_err());
        assert!(SearchFilters::from_payload(Some(&json!([1]))).is_err());
        assert_eq!(
            filters(json!({"language": "EN", "unknown": 1}))
                .language
                .map(|field| field.to_string()),
            Some("EN".into())
        );
    }

    #[test]
    fn first_compatible_searcher_wins() {
        let mut queue = SearchQueue::new();
        let (alice, bob, carol) = (
            user(Some("female"), Some("en")),
            user(Some("male"), Some("fr")),
            user(Some("male"), Some("en")),
        );
        assert_eq!(
            queue.search(searcher(&alice, filters(json!({"language": "en"})))),
            None
        );
        // Bob speaks French: Alice's filter refuses him.
        assert_eq!(queue.search(searcher(&bob, SearchFilters::default())), None);
        let paired = queue.search(searcher(&carol, SearchFilters::default()));
        assert_eq!(paired.map(|found| found.user.id), Some(alice.id));
        assert_eq!(queue.len(), 1);
        assert!(queue.contains(&bob.id));
    }

    #[test]
    fn both_sides_filters_must_accept() {
        let mut queue = SearchQueue::new();
        let (alice, bob) = (user(Some("female"), None), user(Some("male"), None));
        assert_eq!(
            queue.search(searcher(&alice, SearchFilters::default())),
            None
        );
        // Bob accepts Alice, but wants a man: no match.
        assert_eq!(
            queue.search(searcher(&bob, filters(json!({"gender": "male"})))),
            None
        );
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn never_with_itself_and_searching_again_replaces() {
        let mut queue = SearchQueue::new();
        let alice = user(None, None);
        assert_eq!(
            queue.search(searcher(&alice, SearchFilters::default())),
            None
        );
        assert_eq!(
            queue.search(searcher(&alice, SearchFilters::default())),
            None
        );
        assert_eq!(queue.len(), 1);
        assert!(queue.remove(&alice.id));
        assert!(queue.is_empty());
    }

    #[test]
    fn the_partner_just_left_is_never_paired_again() {
        // Bob and Carol both want a woman, so they do not pair with each other.
        let (alice, bob, carol) = (
            user(Some("female"), None),
            user(Some("male"), None),
            user(Some("male"), None),
        );
        let wants_woman = filters(json!({"gender": "female"}));
        let mut queue = SearchQueue::new();
        queue.search(searcher(&bob, wants_woman.clone()));
        queue.search(searcher(&carol, wants_woman));
        assert_eq!(queue.len(), 2);
        let skip = Searcher {
            avoid: Some(bob.id.clone()),
            blocked: Vec::new(),
            ..searcher(&alice, SearchFilters::default())
        };
        assert_eq!(
            queue.search(skip.clone()).map(|found| found.user.id),
            Some(carol.id)
        );
        // Nobody else fits: Alice waits rather than meet Bob again.
        let mut alone = SearchQueue::new();
        alone.search(searcher(&bob, SearchFilters::default()));
        assert_eq!(alone.search(skip.clone()), None);
        assert_eq!(alone.len(), 2);
        // The same when the one who avoids waits first: Bob is not paired with Alice either.
        let mut waiting_first = SearchQueue::new();
        assert_eq!(waiting_first.search(skip), None);
        assert_eq!(
            waiting_first.search(searcher(&bob, SearchFilters::default())),
            None
        );
        assert_eq!(
            waiting_first
                .searchers()
                .map(|waiting| &waiting.user.id)
                .collect::<Vec<_>>(),
            vec![&alice.id, &bob.id]
        );
    }
}
