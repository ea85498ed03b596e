package org.apache.spark.examples;

import java.util.ArrayList;
import java.util.List;

import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * Estimates pi by throwing darts at the unit square, as Spark's bundled example does:
 * {@code spark-example SparkPi [slices]} prints "Pi is roughly 3.14...".
 */
public final class SparkPi {
  private SparkPi() {}

  public static void main(String[] args) {
    SparkSession spark = SparkSession.builder().appName("Spark Pi").getOrCreate();
    try {
      JavaSparkContext sc = new JavaSparkContext(spark.sparkContext());
      int slices = args.length > 0 ? Integer.parseInt(args[0]) : 2;
      int n = (int) Math.min(100000L * slices, Integer.MAX_VALUE);
      List<Integer> seeds = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        seeds.add(i);
      }
      JavaRDD<Integer> darts = sc.parallelize(seeds, slices);
      long inside =
          darts
              .filter(
                  i -> {
                    double x = Math.random() * 2 - 1;
                    double y = Math.random() * 2 - 1;
                    return x * x + y * y <= 1;
                  })
              .count();
      System.out.println("Pi is roughly " + 4.0 * inside / n);
    } finally {
      spark.stop();
    }
  }
}
