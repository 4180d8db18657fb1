//! Targets: what is protected, and how it is backed up and restored.

use std::time::Duration;

use cairn_manifest::{ComponentName, TargetName};
use cairn_retention::{Policy, ScheduleRules};
use cairn_source::{ComponentSpec, Hook};

use cairn_job::VerifyTier;

use crate::error::Error;

/// One protected thing: its components and how it is backed up and restored.
///
/// ```
/// use std::time::Duration;
/// use cairn::{TargetConfig, VerifyTier};
/// use cairn_manifest::{ComponentName, TargetName};
/// use cairn_source::{ComponentSpec, Hook};
///
/// let target = TargetConfig::new(TargetName::parse("shop")?)
///     .component(ComponentSpec::sqlite(ComponentName::parse("db")?, "/srv/shop/shop.db"))
///     .component(ComponentSpec::dir(ComponentName::parse("uploads")?, "/srv/shop/uploads").optional(true))
///     .every(Duration::from_secs(6 * 3600))
///     .pre_restore(Hook::new("systemctl stop shop"))
///     .post_restore(Hook::new("systemctl start shop"))
///     .verify_after_write(VerifyTier::Sample);
/// assert_eq!(target.components.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TargetConfig {
    /// Its name.
    pub name: TargetName,
    /// Its components, in order.
    pub components: Vec<ComponentSpec>,
    /// Which backups to keep.
    pub retention: Policy,
    /// Interval of automatic backups (none: manual only).
    pub schedule: Option<Duration>,
    /// Cooldown and minimum interval of automatic backups.
    pub schedule_rules: ScheduleRules,
    /// Run before a restore changes anything (e.g. stop the service).
    pub pre_restore: Option<Hook>,
    /// Run after a restore (e.g. start the service).
    pub post_restore: Option<Hook>,
    /// Verify each new backup at this tier before the job succeeds.
    pub verify_after_write: Option<VerifyTier>,
    /// Re-verify ready backups whose last verification is older than this,
    /// at this tier (run by the scheduler, one backup per target per pass).
    pub reverify: Option<(Duration, VerifyTier)>,
    /// How long a chain of incremental backups may grow (see
    /// `docs/incremental.md`).
    pub chain: ChainRule,
    /// The age recipients new backups are encrypted to (none: stored in the
    /// clear; `docs/encryption.md`).
    pub encrypt_to: Vec<cairn_crypt::Recipient>,
}

/// When a backup is incremental: at most `max_depth` backups after a full one
/// (0: every backup is full), and a full one at least every `full_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainRule {
    /// Most incremental backups after a full one (default 7).
    pub max_depth: u32,
    /// A full backup when the chain's full backup is older than this.
    pub full_every: Option<Duration>,
}

impl Default for ChainRule {
    fn default() -> Self {
        ChainRule {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            full_every: None,
        }
    }
}

impl ChainRule {
    /// The default `max_depth`.
    pub const DEFAULT_MAX_DEPTH: u32 = 7;
    /// The largest `max_depth` accepted.
    pub const MAX_DEPTH: u32 = 32;

    /// A rule with `max_depth` incremental backups after each full one.
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.max_depth = depth;
        self
    }

    /// A rule that also makes a full backup once the chain's is older than `every`.
    pub fn full_every(mut self, every: Duration) -> Self {
        self.full_every = Some(every);
        self
    }
}

impl TargetConfig {
    /// A target without components yet, with the default retention.
    pub fn new(name: TargetName) -> Self {
        Self {
            name,
            components: Vec::new(),
            retention: Policy::default(),
            schedule: None,
            schedule_rules: ScheduleRules::default(),
            pre_restore: None,
            post_restore: None,
            verify_after_write: None,
            reverify: None,
            chain: ChainRule::default(),
            encrypt_to: Vec::new(),
        }
    }

    /// Encrypts new backups to `recipient` too (each recipient alone can
    /// decrypt them). Whoever holds none of their identities cannot restore
    /// them: keep a recovery identity offline.
    #[must_use]
    pub fn encrypt_to(mut self, recipient: cairn_crypt::Recipient) -> Self {
        self.encrypt_to.push(recipient);
        self
    }

    /// Sets when backups are incremental.
    #[must_use]
    pub fn chain(mut self, rule: ChainRule) -> Self {
        self.chain = rule;
        self
    }

    /// Adds a component.
    #[must_use]
    pub fn component(mut self, spec: ComponentSpec) -> Self {
        self.components.push(spec);
        self
    }

    /// Sets the retention policy.
    #[must_use]
    pub fn retention(mut self, policy: Policy) -> Self {
        self.retention = policy;
        self
    }

    /// Backs up automatically at this interval (when the scheduler runs).
    #[must_use]
    pub fn every(mut self, interval: Duration) -> Self {
        self.schedule = Some(interval);
        self
    }

    /// Sets the cooldown and minimum interval of automatic backups.
    #[must_use]
    pub fn schedule_rules(mut self, rules: ScheduleRules) -> Self {
        self.schedule_rules = rules;
        self
    }

    /// Sets the pre-restore hook.
    #[must_use]
    pub fn pre_restore(mut self, hook: Hook) -> Self {
        self.pre_restore = Some(hook);
        self
    }

    /// Sets the post-restore hook.
    #[must_use]
    pub fn post_restore(mut self, hook: Hook) -> Self {
        self.post_restore = Some(hook);
        self
    }

    /// Verifies every new backup at `tier`.
    #[must_use]
    pub fn verify_after_write(mut self, tier: VerifyTier) -> Self {
        self.verify_after_write = Some(tier);
        self
    }

    /// Has the scheduler re-verify each ready backup when its last
    /// verification is older than `every`.
    #[must_use]
    pub fn reverify_every(mut self, every: Duration, tier: VerifyTier) -> Self {
        self.reverify = Some((every, tier));
        self
    }

    /// The component called `name`.
    pub fn find(&self, name: &ComponentName) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| &c.name == name)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.components.is_empty() {
            return Err(Error::Config(format!(
                "target {} has no components",
                self.name
            )));
        }
        for (i, c) in self.components.iter().enumerate() {
            if self.components[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::Config(format!(
                    "target {}: component {} is listed twice",
                    self.name, c.name
                )));
            }
            if c.path.file_name().is_none() {
                return Err(Error::Config(format!(
                    "target {}: component {} has no usable path ({})",
                    self.name,
                    c.name,
                    c.path.display()
                )));
            }
        }
        if self.chain.max_depth > ChainRule::MAX_DEPTH {
            return Err(Error::Config(format!(
                "target {}: max_depth is {}; at most {}",
                self.name,
                self.chain.max_depth,
                ChainRule::MAX_DEPTH
            )));
        }
        if self.schedule.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(Error::Config(format!(
                "target {}: the schedule interval must be at least one second",
                self.name
            )));
        }
        Ok(())
    }
}

/// Applies the settings changed at run time over a target's configuration.
pub(crate) fn apply_settings(settings: &cairn_catalog::TargetSettings, target: &mut TargetConfig) {
    if let Some(p) = &settings.retention {
        target.retention = p.clone();
    }
    if let Some(every) = settings.every {
        target.schedule = every;
    }
}
