//! Packed name lists. A directory listing holds many short names; packing them end to
//! end in one buffer makes a 100k-entry directory a handful of allocations instead of
//! one or two per name, and keeps the cached listings of the lower layers compact.

use std::hash::BuildHasher;
use std::io;

use hashbrown::{DefaultHashBuilder, HashTable};

/// Names packed in one buffer, each with a value, in the order they were pushed.
#[derive(Debug)]
pub struct NameList<T> {
    bytes: Vec<u8>,
    items: Vec<Item<T>>,
}

#[derive(Debug, Clone, Copy)]
struct Item<T> {
    start: u32,
    len: u32,
    value: T,
}

impl<T> Default for NameList<T> {
    fn default() -> Self {
        NameList {
            bytes: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl<T> NameList<T> {
    /// Appends `name` with its value; returns its index. Fails only past 4 GiB of names.
    pub fn push(&mut self, name: &[u8], value: T) -> io::Result<usize> {
        let too_big = || io::Error::new(io::ErrorKind::OutOfMemory, "over 4 GiB of names");
        let start = u32::try_from(self.bytes.len()).map_err(|_| too_big())?;
        let len = u32::try_from(name.len()).map_err(|_| too_big())?;
        start.checked_add(len).ok_or_else(too_big)?;
        self.bytes.extend_from_slice(name);
        self.items.push(Item { start, len, value });
        Ok(self.items.len() - 1)
    }

    /// Moves every entry of `other` to the end of this list (`other` is left empty).
    pub fn append(&mut self, other: &mut NameList<T>) -> io::Result<()> {
        if u32::try_from(self.bytes.len() + other.bytes.len()).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "over 4 GiB of names",
            ));
        }
        let base = self.bytes.len() as u32;
        self.bytes.append(&mut other.bytes);
        self.items.extend(other.items.drain(..).map(|mut it| {
            it.start += base;
            it
        }));
        Ok(())
    }

    /// Gives back the memory grown past what the entries need (for lists kept long).
    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.items.shrink_to_fit();
    }

    /// Removes every entry (keeping the memory for reuse).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The name and value at `index` (panics past the end, as slice indexing does).
    pub fn get(&self, index: usize) -> (&[u8], &T) {
        let it = &self.items[index];
        (self.name_of(it), &it.value)
    }

    fn name_of(&self, it: &Item<T>) -> &[u8] {
        &self.bytes[it.start as usize..(it.start + it.len) as usize]
    }

    /// Every name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &T)> + '_ {
        self.items.iter().map(|it| (self.name_of(it), &it.value))
    }

    /// Reorders the entries (stable) by a key of their values; names stay where they are.
    pub fn sort_by_key<K: Ord>(&mut self, skip: usize, mut key: impl FnMut(&T) -> K) {
        if let Some(tail) = self.items.get_mut(skip..) {
            tail.sort_by_key(|it| key(&it.value));
        }
    }
}

/// A [`NameList`] with an index by name (names are unique).
#[derive(Debug)]
pub struct NameMap<T> {
    list: NameList<T>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<T> Default for NameMap<T> {
    fn default() -> Self {
        NameMap {
            list: NameList::default(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<T> NameMap<T> {
    fn find(&self, name: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        self.index
            .find(hash, |&i| self.list.get(i as usize).0 == name)
            .map(|&i| i as usize)
    }

    /// The value stored under `name`.
    pub fn get(&self, name: &[u8]) -> Option<&T> {
        self.find(name).map(|i| self.list.get(i).1)
    }

    /// The value stored under `name`, to change it.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut T> {
        let i = self.find(name)?;
        Some(&mut self.list.items[i].value)
    }

    /// Adds `name` (not present yet: check with `get` first) with its value.
    pub fn insert_new(&mut self, name: &[u8], value: T) -> io::Result<()> {
        let i = self.list.push(name, value)?;
        let i = u32::try_from(i)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "over 4G names"))?;
        let hash = self.hasher.hash_one(name);
        let NameMap {
            list,
            index,
            hasher,
        } = self;
        index.insert_unique(hash, i, |&j| hasher.hash_one(list.get(j as usize).0));
        Ok(())
    }

    /// Every name and value, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &T)> + '_ {
        self.list.iter()
    }

    /// Gives back the memory grown past what the entries need (for maps kept long).
    pub fn shrink_to_fit(&mut self) {
        self.list.shrink_to_fit();
        let hasher = &self.hasher;
        let list = &self.list;
        self.index
            .shrink_to_fit(|&i| hasher.hash_one(list.get(i as usize).0));
    }

    /// Every value, in insertion order, to change them.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.list.items.iter_mut().map(|it| &mut it.value)
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_order_and_names() {
        let mut l = NameList::default();
        for (i, n) in ["b", "", "a-longer-name", "é"].iter().enumerate() {
            assert_eq!(l.push(n.as_bytes(), i).expect("push"), i);
        }
        let got: Vec<_> = l.iter().map(|(n, v)| (n.to_vec(), *v)).collect();
        assert_eq!(
            got,
            vec![
                (b"b".to_vec(), 0),
                (b"".to_vec(), 1),
                (b"a-longer-name".to_vec(), 2),
                ("é".as_bytes().to_vec(), 3)
            ]
        );
        l.sort_by_key(1, |v| std::cmp::Reverse(*v));
        let names: Vec<_> = l.iter().map(|(n, _)| n.to_vec()).collect();
        assert_eq!(names[0], b"b");
        assert_eq!(names[1], "é".as_bytes());
        assert_eq!(names[3], b"");
    }

    #[test]
    fn maps_find_what_was_inserted_and_nothing_else() {
        let mut m = NameMap::default();
        for i in 0..5000u32 {
            m.insert_new(format!("e{i:06}").as_bytes(), i)
                .expect("insert");
        }
        assert_eq!(m.len(), 5000);
        for i in (0..5000u32).step_by(7) {
            assert_eq!(m.get(format!("e{i:06}").as_bytes()), Some(&i));
        }
        assert_eq!(m.get(b"e005000"), None);
        assert_eq!(m.get(b"e00000"), None);
        *m.get_mut(b"e000042").expect("present") = 7;
        assert_eq!(m.get(b"e000042"), Some(&7));
        let order: Vec<u32> = m.iter().take(3).map(|(_, v)| *v).collect();
        assert_eq!(order, vec![0, 1, 2]);
    }
}
