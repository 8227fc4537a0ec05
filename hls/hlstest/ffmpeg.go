package hlstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FFmpegRendition is one output rendition of [GenerateFFmpeg].
type FFmpegRendition struct {
	Name          string // directory name, e.g. "480p"
	Width, Height int
	VideoBitrate  int // bits per second
}

// DefaultFFmpegRenditions are 240p, 480p and 720p at modest bitrates.
var DefaultFFmpegRenditions = []FFmpegRendition{
	{Name: "240p", Width: 426, Height: 240, VideoBitrate: 300_000},
	{Name: "480p", Width: 854, Height: 480, VideoBitrate: 800_000},
	{Name: "720p", Width: 1280, Height: 720, VideoBitrate: 1_500_000},
}

// FFmpegOptions configure [GenerateFFmpeg]. The zero value makes 12 s of
// 2 s MPEG-TS segments in DefaultFFmpegRenditions.
type FFmpegOptions struct {
	// FFmpeg is the ffmpeg binary. If empty, "ffmpeg" from PATH.
	FFmpeg string
	// Duration of the content. If zero, 12s.
	Duration time.Duration
	// SegmentDuration is the HLS segment (and GOP) duration. If zero, 2s.
	SegmentDuration time.Duration
	// FMP4 makes fragmented MP4 segments (with an init section per
	// rendition) instead of MPEG-TS.
	FMP4 bool
	// Renditions to encode. If nil, DefaultFFmpegRenditions.
	Renditions []FFmpegRendition
	// FrameRate of the video. If zero, 24.
	FrameRate int
}

// GenerateFFmpeg encodes a VOD ABR presentation into dir (which must exist)
// with ffmpeg's testsrc2 and sine sources: dir/master.m3u8 and, per
// rendition, dir/NAME/index.m3u8 with its segments (segNNN.ts, or
// segNNN.m4s and an init section init_I.mp4 as ffmpeg names it). It returns the path of
// the master playlist. The ultrafast x264 preset keeps it quick: 12 s of
// the default renditions take a few CPU-seconds.
func GenerateFFmpeg(ctx context.Context, dir string, opts FFmpegOptions) (string, error) {
	bin := opts.FFmpeg
	if bin == "" {
		bin = "ffmpeg"
	}
	dur := opts.Duration
	if dur <= 0 {
		dur = 12 * time.Second
	}
	seg := opts.SegmentDuration
	if seg <= 0 {
		seg = 2 * time.Second
	}
	fps := opts.FrameRate
	if fps <= 0 {
		fps = 24
	}
	rends := opts.Renditions
	if rends == nil {
		rends = DefaultFFmpegRenditions
	}
	if len(rends) == 0 {
		return "", errors.New("hlstest: no renditions")
	}
	top := rends[0]
	for _, r := range rends {
		if r.Width*r.Height > top.Width*top.Height {
			top = r
		}
	}
	secs := strconv.FormatFloat(dur.Seconds(), 'f', 3, 64)
	gop := strconv.Itoa(max(1, int(seg.Seconds()*float64(fps))))
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", top.Width, top.Height, fps, secs),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + secs,
	}
	var filter strings.Builder
	fmt.Fprintf(&filter, "[0:v]split=%d", len(rends))
	for i := range rends {
		fmt.Fprintf(&filter, "[s%d]", i)
	}
	var streamMap []string
	for i, r := range rends {
		fmt.Fprintf(&filter, ";[s%d]scale=%d:%d[v%d]", i, r.Width, r.Height, i)
		streamMap = append(streamMap, fmt.Sprintf("v:%d,a:%d,name:%s", i, i, r.Name))
	}
	args = append(args, "-filter_complex", filter.String())
	for i, r := range rends {
		args = append(args, "-map", fmt.Sprintf("[v%d]", i), "-map", "1:a",
			fmt.Sprintf("-b:v:%d", i), strconv.Itoa(r.VideoBitrate),
			fmt.Sprintf("-maxrate:v:%d", i), strconv.Itoa(r.VideoBitrate*3/2),
			fmt.Sprintf("-bufsize:v:%d", i), strconv.Itoa(r.VideoBitrate*2))
	}
	args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "64k", "-ac", "2",
		"-f", "hls", "-hls_time", strconv.FormatFloat(seg.Seconds(), 'f', 3, 64), "-hls_playlist_type", "vod",
		"-master_pl_name", "master.m3u8", "-var_stream_map", strings.Join(streamMap, " "))
	if opts.FMP4 {
		args = append(args, "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
			"-hls_segment_filename", filepath.Join(dir, "%v", "seg%03d.m4s"))
	} else {
		args = append(args, "-hls_segment_type", "mpegts", "-hls_segment_filename", filepath.Join(dir, "%v", "seg%03d.ts"))
	}
	args = append(args, filepath.Join(dir, "%v", "index.m3u8"))
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		return "", fmt.Errorf("hlstest: ffmpeg: %w: %s", err, msg)
	}
	master := filepath.Join(dir, "master.m3u8")
	if _, err := os.Stat(master); err != nil {
		return "", fmt.Errorf("hlstest: ffmpeg wrote no master playlist: %w", err)
	}
	return master, nil
}
