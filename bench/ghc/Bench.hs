-- The benchmark workloads of bench/compare_engine.py in Haskell, the same algorithms
-- as the exathunk programs grammar/cases/bench_*.xt (and the prelude's definitions of
-- map, filter, range, take, iterate, zip-with and sum, exathunk/prelude.xt).
--
-- Usage:  Bench WORKLOAD VARIANT SAMPLES MIN_MS ARG...
--
--   WORKLOAD  fib | tak | pipeline | sharing | stream | tree
--   VARIANT   hand     lazy lists of our own type L (no list fusion can apply), as the
--                      exathunk prelude builds them; fib, tak and tree have only this one
--             prelude  the idiomatic Prelude lists (foldr/build fusion may apply at -O)
--   SAMPLES   how many timings to print
--   MIN_MS    each timing repeats the computation until MIN_MS of CPU time have passed
--             (at least once, at most 1000 times) and gives the CPU time per call
--   ARG...    the workload's inputs (the driver passes the same ones as the .xt file),
--             read at run time so the compiler can neither constant-fold the
--             computation nor float it out of the timed region as a shared constant:
--               fib N | tak X Y Z | pipeline LIMIT | sharing N A B (the first two
--               elements, 0 1) | stream N START (0) | tree N SEED
--
-- Output: one line per timing, "run RESULT CPU_PICOSECONDS_PER_CALL".  The CPU time is
-- System.CPUTime.getCPUTime around the forced computation only (GC included, compile,
-- load and start-up excluded).  The same source runs compiled (ghc -O0, ghc -O2) and
-- interpreted as bytecode (ghc -e, GHCi's interpreter): keep it to Haskell 2010.
module Main (main) where

import Control.Exception (evaluate)
import Data.IORef (newIORef, readIORef)
import Data.List (foldl')
import System.CPUTime (getCPUTime)
import System.Environment (getArgs)
import System.Exit (exitWith, ExitCode (..))
import System.IO (hFlush, hPutStrLn, stderr, stdout)

-- ---- hand-written lazy lists (exathunk/prelude.xt) ------------------------------------

data L = Nil | Cons Int L

mapL :: (Int -> Int) -> L -> L
mapL _ Nil = Nil
mapL f (Cons x xs) = Cons (f x) (mapL f xs)

filterL :: (Int -> Bool) -> L -> L
filterL _ Nil = Nil
filterL p (Cons x xs) = if p x then Cons x (filterL p xs) else filterL p xs

takeL :: Int -> L -> L
takeL n xs
  | n <= 0 = Nil
  | otherwise = case xs of
      Nil -> Nil
      Cons x r -> Cons x (takeL (n - 1) r)

iterateL :: (Int -> Int) -> Int -> L
iterateL f x = Cons x (iterateL f (f x))

rangeL :: Int -> Int -> L
rangeL a b = if a >= b then Nil else Cons a (rangeL (a + 1) b)

zipWithL :: (Int -> Int -> Int) -> L -> L -> L
zipWithL f (Cons x xs) (Cons y ys) = Cons (f x y) (zipWithL f xs ys)
zipWithL _ _ _ = Nil

tailL :: L -> L
tailL (Cons _ xs) = xs
tailL Nil = error "tail of nil"

-- sum: a strict accumulator, as %sum-from forces it with seq at every element
sumL :: L -> Int
sumL = go 0
  where
    go acc Nil = acc
    go acc (Cons x xs) = let next = acc + x in next `seq` go next xs

-- ---- the workloads ---------------------------------------------------------------------

fib :: Int -> Int
fib n = if n < 2 then n else fib (n - 1) + fib (n - 2)

tak :: Int -> Int -> Int -> Int
tak x y z = if not (y < x) then z else tak (tak (x - 1) y z) (tak (y - 1) z x) (tak (z - 1) x y)

-- (sum (map (lambda (x) (* x x)) (filter (lambda (x) (= (mod x 3) 0)) (range 0 300000))))
pipelineHand :: Int -> Int
pipelineHand limit = sumL (mapL (\x -> x * x) (filterL (\x -> x `mod` 3 == 0) (rangeL 0 limit)))

pipelinePrelude :: Int -> Int
pipelinePrelude limit =
  foldl' (+) 0 (map (\x -> x * x) (filter (\x -> x `mod` 3 == 0) [0 .. limit - 1]))

-- (let ((fibs (cons 0 (cons 1 (zip-with (lambda (a b) (mod (+ a b) 1000000007))
--                                         fibs (tail fibs))))))  (sum (take 200000 fibs)))
sharingHand :: Int -> Int -> Int -> Int
sharingHand n a0 a1 =
  let fibs = Cons a0 (Cons a1 (zipWithL (\a b -> (a + b) `mod` 1000000007) fibs (tailL fibs)))
  in sumL (takeL n fibs)

sharingPrelude :: Int -> Int -> Int -> Int
sharingPrelude n a0 a1 =
  let fibs = a0 : a1 : zipWith (\a b -> (a + b) `mod` 1000000007) fibs (tail fibs)
  in foldl' (+) 0 (take n fibs)

-- (sum (take 10000000 (iterate (lambda (x) (+ x 1)) 0)))
streamHand :: Int -> Int -> Int
streamHand n start = sumL (takeL n (iterateL (\x -> x + 1) start))

streamPrelude :: Int -> Int -> Int
streamPrelude n start = foldl' (+) 0 (take n (iterate (\x -> x + 1) start))

-- grammar/cases/bench_tree.xt
data Tree = Leaf | Node Tree Int Tree

insert :: Int -> Tree -> Tree
insert x t = case t of
  Leaf -> Node Leaf x Leaf
  Node l v r
    | x < v -> Node (insert x l) v r
    | x > v -> Node l v (insert x r)
    | otherwise -> t

total :: Tree -> Int
total t = case t of
  Leaf -> 0
  Node l v r -> total l + (v + total r)

build :: Int -> Int -> Tree -> Tree
build n seed t =
  if n == 0
    then t
    else
      let s = (seed * 1103515245 + 12345) `mod` 2147483648
      in build (n - 1) s (insert (s `mod` 1000000) t)

tree :: Int -> Int -> Int
tree n seed = total (build n seed Leaf)

-- ---- driver ----------------------------------------------------------------------------

workload :: String -> String -> Maybe ([Int] -> Int)
workload name variant = case (name, variant) of
  ("fib", "hand") -> Just (\[n] -> fib n)
  ("tak", "hand") -> Just (\[x, y, z] -> tak x y z)
  ("pipeline", "hand") -> Just (\[l] -> pipelineHand l)
  ("pipeline", "prelude") -> Just (\[l] -> pipelinePrelude l)
  ("sharing", "hand") -> Just (\[n, a, b] -> sharingHand n a b)
  ("sharing", "prelude") -> Just (\[n, a, b] -> sharingPrelude n a b)
  ("stream", "hand") -> Just (\[n, s] -> streamHand n s)
  ("stream", "prelude") -> Just (\[n, s] -> streamPrelude n s)
  ("tree", "hand") -> Just (\[n, s] -> tree n s)
  _ -> Nothing

main :: IO ()
main = do
  argv <- getArgs
  case argv of
    (name : variant : samples : minMs : rest) | Just work <- workload name variant -> do
      inputs <- newIORef (map read rest :: [Int])
      let minPs = read minMs * 1000000000 :: Integer
          -- one timing: repeat until minPs of CPU time passed; the inputs are read from
          -- the IORef after the clock starts, so each call's work cannot start earlier
          -- or be shared with another call's
          timing = do
            t0 <- getCPUTime
            let loop count = do
                  ins <- readIORef inputs
                  r <- evaluate (work ins)
                  t1 <- getCPUTime
                  let elapsed = t1 - t0
                  if elapsed >= minPs || count >= 1000
                    then return (r, elapsed `div` toInteger count)
                    else loop (count + 1)
            loop (1 :: Int)
      mapM_ (\_ -> do
               (r, ps) <- timing
               putStrLn ("run " ++ show r ++ " " ++ show ps)
               hFlush stdout)
            [1 .. (read samples :: Int)]
    _ -> do
      hPutStrLn stderr "usage: Bench WORKLOAD VARIANT SAMPLES MIN_MS ARG..."
      exitWith (ExitFailure 2)
