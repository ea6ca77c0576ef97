//! Sorted, non-overlapping, non-adjacent inclusive ranges over an unsigned
//! integer domain, with the set algebra the group parsers need (union,
//! complement) and a binary-search membership test.

/// An unsigned integer domain with a minimum and maximum.
pub(crate) trait Point: Copy + Ord + std::fmt::Debug {
    const MIN: Self;
    const MAX: Self;
    /// `self + 1`, `None` at `MAX`.
    fn succ(self) -> Option<Self>;
    /// `self - 1`, `None` at `MIN`.
    fn pred(self) -> Option<Self>;
}

macro_rules! point {
    ($t:ty) => {
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn pred(self) -> Option<Self> {
                self.checked_sub(1)
            }
        }
    };
}
point!(u16);
point!(u32);
point!(u128);

/// A set of points as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, PartialEq, Eq, Debug, Default, Hash)]
pub(crate) struct RangeSet<T: Point> {
    ranges: Vec<(T, T)>,
}

impl<T: Point> RangeSet<T> {
    pub(crate) fn empty() -> Self {
        RangeSet { ranges: Vec::new() }
    }

    pub(crate) fn full() -> Self {
        RangeSet {
            ranges: vec![(T::MIN, T::MAX)],
        }
    }

    /// One range; `lo > hi` gives the empty set.
    pub(crate) fn range(lo: T, hi: T) -> Self {
        if lo > hi {
            Self::empty()
        } else {
            RangeSet {
                ranges: vec![(lo, hi)],
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.ranges.len() == 1 && self.ranges[0] == (T::MIN, T::MAX)
    }

    pub(crate) fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// Membership by binary search.
    #[inline]
    pub(crate) fn contains(&self, x: T) -> bool {
        // First range whose upper end is >= x.
        let i = self.ranges.partition_point(|&(_, hi)| hi < x);
        match self.ranges.get(i) {
            Some(&(lo, _)) => lo <= x,
            None => false,
        }
    }

    /// Builds from arbitrary ranges (any order, overlapping, adjacent).
    pub(crate) fn normalize(mut v: Vec<(T, T)>) -> Self {
        v.retain(|&(lo, hi)| lo <= hi);
        v.sort_unstable();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            if let Some(last) = out.last_mut() {
                // Overlapping or adjacent: extend.
                let touches = match last.1.succ() {
                    Some(next) => lo <= next,
                    None => true,
                };
                if touches {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                    continue;
                }
            }
            out.push((lo, hi));
        }
        RangeSet { ranges: out }
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        if self.is_empty() {
            return other.clone();
        }
        if other.is_empty() {
            return self.clone();
        }
        let mut v = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        v.extend_from_slice(&self.ranges);
        v.extend_from_slice(&other.ranges);
        Self::normalize(v)
    }

    pub(crate) fn complement(&self) -> Self {
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut next = Some(T::MIN);
        for &(lo, hi) in &self.ranges {
            if let Some(n) = next {
                if n < lo {
                    // lo > MIN here, so pred exists.
                    if let Some(p) = lo.pred() {
                        out.push((n, p));
                    }
                }
            }
            next = hi.succ();
        }
        if let Some(n) = next {
            out.push((n, T::MAX));
        }
        RangeSet { ranges: out }
    }

    /// `self \ other`.
    pub(crate) fn difference(&self, other: &Self) -> Self {
        if other.is_empty() || self.is_empty() {
            return self.clone();
        }
        // a \ b = !( !a ∪ b )
        self.complement().union(other).complement()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_merges_overlap_and_adjacency() {
        let s = RangeSet::<u16>::normalize(vec![(10, 20), (21, 30), (5, 12), (40, 50), (100, 99)]);
        assert_eq!(s.ranges(), &[(5, 30), (40, 50)]);
    }

    #[test]
    fn complement_edges() {
        assert_eq!(RangeSet::<u16>::empty().complement(), RangeSet::full());
        assert!(RangeSet::<u16>::full().complement().is_empty());
        let s = RangeSet::<u16>::normalize(vec![(0, 0), (65535, 65535)]);
        assert_eq!(s.complement().ranges(), &[(1, 65534)]);
        let s = RangeSet::<u16>::range(10, 20);
        assert_eq!(s.complement().ranges(), &[(0, 9), (21, 65535)]);
    }

    #[test]
    fn contains_and_difference() {
        let a = RangeSet::<u32>::range(0, 100);
        let b = RangeSet::<u32>::normalize(vec![(10, 20), (50, 50)]);
        let d = a.difference(&b);
        assert_eq!(d.ranges(), &[(0, 9), (21, 49), (51, 100)]);
        assert!(d.contains(0) && d.contains(9) && !d.contains(10) && !d.contains(50));
        assert!(d.contains(100) && !d.contains(101) && !d.contains(u32::MAX));
        let full = RangeSet::<u128>::full();
        assert!(full.contains(0) && full.contains(u128::MAX) && full.is_full());
    }
}
