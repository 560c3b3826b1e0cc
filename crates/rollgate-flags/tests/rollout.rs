//! Raising a flag's rollout percentage never moves anyone out of the
//! enabled group: a user's bucket depends only on the group and their id.

use proptest::prelude::*;
use rollgate_flags::{Context, Env, Flag, evaluate};

fn flag(percent: u32) -> Flag {
    serde_json::from_value(serde_json::json!({
        "name": "new-scorer", "enabled": true,
        "strategies": [{ "name": "flexibleRollout", "parameters": { "rollout": percent.to_string(), "stickiness": "default", "groupId": "new-scorer" } }]
    }))
    .unwrap()
}

fn enabled(percent: u32, user: &str) -> bool {
    let mut never = || unreachable!("a user id decides, not chance");
    let mut env = Env { now: jiff::Timestamp::UNIX_EPOCH, random: &mut never };
    let ctx = Context { user_id: Some(user.to_string()), ..Context::default() };
    evaluate(&flag(percent), &ctx, &mut env).enabled
}

proptest! {
    #[test]
    fn raising_the_percentage_keeps_everyone_already_in(user in "[a-z0-9-]{1,24}", low in 0u32..=100, raise in 0u32..=100) {
        let high = (low + raise).min(100);
        if enabled(low, &user) {
            prop_assert!(enabled(high, &user), "{user} was in at {low}% and out at {high}%");
        }
    }
}

#[test]
fn the_share_let_in_follows_the_percentage() {
    for percent in [0, 1, 10, 50, 100] {
        let n = 20_000;
        let share = (0..n).filter(|i| enabled(percent, &format!("user-{i}"))).count() as f64 / n as f64;
        assert!((share - percent as f64 / 100.0).abs() < 0.015, "{percent}%: {share}");
    }
}
