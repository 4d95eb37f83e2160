//! The operator's requests (standby, takeover, status) and the signals that end the daemon.

use super::*;

impl Node {
    pub(super) fn in_scope(&self, g: usize, scope: Scope) -> bool {
        let mine = self.groups[g].spec.preferred == self.s.node;
        match scope {
            Scope::All => true,
            Scope::Local => mine,
            Scope::Foreign => !mine,
            Scope::Group(i) => i == g,
        }
    }

    pub(super) fn request(&mut self, request: Request) {
        let (word, scope) = match request {
            Request::Standby(scope) => ("standby", scope),
            Request::Takeover(scope) => ("takeover", scope),
        };
        let chosen: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.in_scope(g, scope))
            .collect();
        let names: Vec<String> = chosen
            .iter()
            .map(|&g| self.groups[g].spec.name.clone())
            .collect();
        self.log(
            Level::Info,
            if self.groups.len() == 1 && scope == Scope::All {
                format!("{word} requested")
            } else {
                format!(
                    "{word} requested for {}",
                    if names.is_empty() {
                        "no group".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            },
        );
        for g in chosen {
            let group = &mut self.groups[g];
            match request {
                Request::Standby(_) => {
                    group.standby = true;
                    group.want = false;
                    if matches!(group.holding, Holding::None | Holding::Failed) {
                        group.holding = Holding::Standby;
                    }
                }
                Request::Takeover(_) => {
                    group.standby = false;
                    // On a node whose stop failed (unclean), the operator's takeover says
                    // it has been cleaned up.
                    if matches!(
                        group.holding,
                        Holding::Standby | Holding::Failed | Holding::Unclean
                    ) {
                        group.holding = Holding::None;
                    }
                    group.want = group.holding != Holding::Held;
                }
            }
        }
        if matches!(request, Request::Takeover(_)) {
            self.want_id += 1;
        }
        self.changed = true;
        self.out.push(Action::Reply(
            serde_json::json!({ "ok": word, "groups": names }).to_string(),
        ));
    }

    pub(super) fn terminate(&mut self) {
        if self.exiting {
            return;
        }
        self.exiting = true;
        for g in &mut self.groups {
            g.want = false;
        }
        self.compat.shutting_down();
    }
}
