//! `rollgate cluster status`: the replicas as a server sees them.

use crate::Refused;
use crate::cli::{ClusterCommand, Target};
use crate::client::Client;
use rollgate_server::cluster::{ClusterView, MemberView};

pub async fn run(target: &Target, command: ClusterCommand) -> anyhow::Result<()> {
    let Some(server) = &target.server else {
        return Err(Refused("`cluster status` asks a server: pass --server or set ROLLGATE_SERVER".into()).into());
    };
    let ClusterCommand::Status { json } = command;
    let view: ClusterView = Client::new(server, target.token.clone())?.get("/api/v1/cluster").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render(&view));
    }
    Ok(())
}

fn render(view: &ClusterView) -> String {
    let mut out = format!("store: {}\n", view.store);
    match (&view.leader, view.token) {
        (Some(leader), Some(token)) => {
            let left = view
                .lease_expires_in_ms
                .map(|ms| format!(", lease runs {:.1} s more unless renewed", ms as f64 / 1000.0));
            out += &format!(
                "leader: {} at {} (fencing token {token}{})\n",
                leader.id,
                leader.address,
                left.unwrap_or_default()
            );
        }
        (Some(leader), None) => out += &format!("leader: {} at {} (one server on SQLite)\n", leader.id, leader.address),
        (None, _) => out += "leader: none: no replica holds the lease now (one takes it within a renewal)\n",
    }
    out += &format!("this replica: {}\n", view.self_.id);
    if !view.members.is_empty() {
        out += "members:\n";
        for m in &view.members {
            out += &member_line(m);
        }
    }
    out
}

fn member_line(m: &MemberView) -> String {
    format!(
        "  {} {:<18} {:<22} last heartbeat {}\n",
        if m.leader { "*" } else { " " },
        m.id,
        m.address,
        m.last_heartbeat.as_deref().unwrap_or("—")
    )
}
