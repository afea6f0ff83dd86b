# Sourced by the training CLI tests (not a test itself: CTest runs tests/cli/*.sh). mini_data ROOT N_TRAIN N_VAL
# makes ROOT/med/{train,val}/{mri,other} with the first N pairs of $D's medical splits as symlinks (nothing copied);
# exits the test when the data set is not found.
mini_data() {
  local root=$1 split n f
  for split in train val; do
    n=$2; [[ $split == val ]] && n=$3
    mkdir -p "$root/med/$split/mri" "$root/med/$split/other"
    for f in $(ls "$D/med/$split/mri" | head -"$n"); do
      ln -s "$D/med/$split/mri/$f" "$root/med/$split/mri/$f"
      ln -s "$D/med/$split/other/$f" "$root/med/$split/other/$f"
    done
  done
  [[ $(ls "$root/med/train/mri" | wc -l) -eq $2 ]] || { echo "FAIL  data images not found under $D"; exit 1; }
}
