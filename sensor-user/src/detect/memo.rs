//! The engine with a short memory of its answers. One delivery asks about the same names
//! several times (the query, its answer, the block's parent domain, the connect), and a
//! flood of names under one lookalike asks about that lookalike's domain every time;
//! the engine is pure, so a remembered answer is the answer.

use std::{cell::RefCell, collections::HashMap};

use super::{Classification, Engine, unreadable};

/// Answers remembered at most; the memory starts over when full (bounded whatever the
/// names, and a flood of distinct names costs one clear per this many). Enough for a
/// backlog of lookups to find their parent domains and, at their answers, their own
/// names; 7/8 of a power of two, the most a table of 4,096 slots holds (one more
/// answer would double it: about 0.5 MB more).
const REMEMBERED: usize = 4096 / 8 * 7;

/// An [`Engine`] that remembers its last answers until it is replaced.
pub struct Memo {
    engine: Engine,
    answers: RefCell<HashMap<Box<str>, Classification>>,
    /// `unreadable::readable_part` of names the engine found invalid: asked as often as
    /// their classification (a route's recipient is judged at every route it meets),
    /// and many times its cost.
    readable: RefCell<HashMap<Box<str>, Option<String>>>,
}

impl Memo {
    /// Remembers `engine`'s answers, starting with none.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            answers: RefCell::new(HashMap::with_capacity(REMEMBERED)),
            readable: RefCell::new(HashMap::new()),
        }
    }

    /// The engine answering.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Switches to `engine`, forgetting every answer of the one before.
    pub fn replace(&mut self, engine: Engine) {
        self.engine = engine;
        self.answers.get_mut().clear();
    }

    /// What the engine says of `name`, from memory when it was asked lately.
    pub fn classify(&self, name: &str) -> Classification {
        if let Some(c) = self.answers.borrow().get(name) {
            return c.clone();
        }
        let c = self.engine.classify(name);
        let mut answers = self.answers.borrow_mut();
        if answers.len() >= REMEMBERED {
            answers.clear();
        }
        answers.insert(name.into(), c.clone());
        c
    }

    /// `unreadable::readable_part(name)`, from memory when it was asked lately (it does
    /// not depend on the engine).
    pub fn readable_part(&self, name: &str) -> Option<String> {
        if let Some(r) = self.readable.borrow().get(name) {
            return r.clone();
        }
        let r = unreadable::readable_part(name);
        let mut readable = self.readable.borrow_mut();
        if readable.len() >= REMEMBERED {
            readable.clear();
        }
        readable.insert(name.into(), r.clone());
        r
    }

    /// Answers remembered now.
    pub fn remembered(&self) -> usize {
        self.answers.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Policy, ProtectEntry};

    fn engine(protect: &[&str]) -> Engine {
        let policy = Policy {
            protect: protect.iter().map(|p| ProtectEntry::new(*p)).collect(),
            ..Policy::default()
        };
        Engine::new(&policy).expect("engine")
    }

    #[test]
    fn a_remembered_answer_is_the_engines() {
        let m = Memo::new(engine(&["army.mil"]));
        for name in [
            "army.ml",
            "p1.army.ml",
            "example.org",
            "army.mil",
            "army.ml",
        ] {
            assert_eq!(m.classify(name), m.engine().classify(name), "{name}");
        }
        assert_eq!(m.remembered(), 4);
    }

    #[test]
    fn a_new_engine_forgets_the_old_answers() {
        let mut m = Memo::new(engine(&["army.mil"]));
        assert!(matches!(
            m.classify("army.ml"),
            Classification::Typosquat(_)
        ));
        m.replace(engine(&["example.com"]));
        assert_eq!(m.remembered(), 0);
        assert_eq!(m.classify("army.ml"), Classification::Clean);
    }

    #[test]
    fn the_memory_stays_bounded() {
        let m = Memo::new(engine(&["army.mil"]));
        let table = m.answers.borrow().capacity();
        for i in 0..REMEMBERED * 2 + 5 {
            m.classify(&format!("p{i}.army.ml"));
            assert!(m.remembered() <= REMEMBERED);
        }
        // Full never means a table twice the size.
        assert_eq!(m.answers.borrow().capacity(), table);
    }
}
